"""PixelCNN++ and its likelihood written "the plain way", as the pclucas14/pixel-cnn-pp port writes them.

The tests check :mod:`density_oe.pixelcnn` against it (outputs, likelihoods, gradients, the port's checkpoint
layout): 1x1 layers as permute +
``nn.Linear`` (``nin``), ``concat_elu`` as ``elu(cat([x, -x]))``, weight norm through the
``torch.nn.utils.weight_norm`` hooks, the loss through broadcast zeros tensors, float masks ``c*a + (1-c)*b`` and a
hand-written log-sum-exp.  Its parameters have the port's exact names and shapes (``conv.weight_g``,
``lin_a.weight_v``, ``deconv.weight_g`` per *input* channel, ...), so a ``state_dict`` of :class:`PlainPixelCNN`
saved with ``module.`` prefixes is a checkpoint in the port's layout.

Changes from the port, so that outputs are comparable with :mod:`density_oe` (and it runs at all today):
device-agnostic (no ``.cuda()``); the ones channel is built per call (the port caches it from the first batch, so
a batch of another size crashes); dropout is element-wise with a configurable rate (the port hard-codes channel-wise
``Dropout2d(0.5)``); the loss returns per-image log-likelihoods (the port sums over the batch); Python 3 syntax.
"""
from __future__ import annotations

import warnings

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

with warnings.catch_warnings():
    warnings.simplefilter("ignore", FutureWarning)
    from torch.nn.utils import weight_norm as _weight_norm


def wn(module: nn.Module) -> nn.Module:
    """The deprecated hook-based weight norm the port uses (same ``weight_g``/``weight_v`` state-dict keys)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return _weight_norm(module)


def concat_elu(x: torch.Tensor) -> torch.Tensor:
    return F.elu(torch.cat([x, -x], dim=1))


def log_sum_exp(x: torch.Tensor) -> torch.Tensor:
    axis = len(x.size()) - 1
    m, _ = torch.max(x, dim=axis)
    m2, _ = torch.max(x, dim=axis, keepdim=True)
    return m + torch.log(torch.sum(torch.exp(x - m2), dim=axis))


def log_prob_from_logits(x: torch.Tensor) -> torch.Tensor:
    axis = len(x.size()) - 1
    m, _ = torch.max(x, dim=axis, keepdim=True)
    return x - m - torch.log(torch.sum(torch.exp(x - m), dim=axis, keepdim=True))


def discretized_mix_logistic_log_prob(x: torch.Tensor, l: torch.Tensor) -> torch.Tensor:
    """Per-image log-likelihood (nats, shape [B]) of ``x`` (B, 3, H, W) in [-1, 1] under DMOL params ``l``."""
    x = x.permute(0, 2, 3, 1)
    l = l.permute(0, 2, 3, 1)
    xs = [int(y) for y in x.size()]
    ls = [int(y) for y in l.size()]
    nr_mix = int(ls[-1] / 10)
    logit_probs = l[:, :, :, :nr_mix]
    l = l[:, :, :, nr_mix:].contiguous().view(xs + [nr_mix * 3])
    means = l[:, :, :, :, :nr_mix]
    log_scales = torch.clamp(l[:, :, :, :, nr_mix:2 * nr_mix], min=-7.)
    coeffs = torch.tanh(l[:, :, :, :, 2 * nr_mix:3 * nr_mix])
    x = x.contiguous()
    x = x.unsqueeze(-1) + torch.zeros(xs + [nr_mix], device=x.device, requires_grad=False)
    m2 = (means[:, :, :, 1, :] + coeffs[:, :, :, 0, :] * x[:, :, :, 0, :]).view(xs[0], xs[1], xs[2], 1, nr_mix)
    m3 = (means[:, :, :, 2, :] + coeffs[:, :, :, 1, :] * x[:, :, :, 0, :]
          + coeffs[:, :, :, 2, :] * x[:, :, :, 1, :]).view(xs[0], xs[1], xs[2], 1, nr_mix)
    means = torch.cat((means[:, :, :, 0, :].unsqueeze(3), m2, m3), dim=3)
    centered_x = x - means
    inv_stdv = torch.exp(-log_scales)
    plus_in = inv_stdv * (centered_x + 1. / 255.)
    cdf_plus = torch.sigmoid(plus_in)
    min_in = inv_stdv * (centered_x - 1. / 255.)
    cdf_min = torch.sigmoid(min_in)
    log_cdf_plus = plus_in - F.softplus(plus_in)
    log_one_minus_cdf_min = -F.softplus(min_in)
    cdf_delta = cdf_plus - cdf_min
    mid_in = inv_stdv * centered_x
    log_pdf_mid = mid_in - log_scales - 2. * F.softplus(mid_in)
    inner_inner_cond = (cdf_delta > 1e-5).float()
    inner_inner_out = inner_inner_cond * torch.log(torch.clamp(cdf_delta, min=1e-12)) \
        + (1. - inner_inner_cond) * (log_pdf_mid - np.log(127.5))
    inner_cond = (x > 0.999).float()
    inner_out = inner_cond * log_one_minus_cdf_min + (1. - inner_cond) * inner_inner_out
    cond = (x < -0.999).float()
    log_probs = cond * log_cdf_plus + (1. - cond) * inner_out
    log_probs = torch.sum(log_probs, dim=3) + log_prob_from_logits(logit_probs)
    return log_sum_exp(log_probs).sum(dim=(1, 2))


def discretized_mix_logistic_loss(x: torch.Tensor, l: torch.Tensor) -> torch.Tensor:
    """The port's loss: negative log-likelihood summed over the batch (nats)."""
    return -discretized_mix_logistic_log_prob(x, l).sum()


def down_shift(x: torch.Tensor) -> torch.Tensor:
    xs = [int(y) for y in x.size()]
    return nn.ZeroPad2d((0, 0, 1, 0))(x[:, :, :xs[2] - 1, :])


def right_shift(x: torch.Tensor) -> torch.Tensor:
    xs = [int(y) for y in x.size()]
    return nn.ZeroPad2d((1, 0, 0, 0))(x[:, :, :, :xs[3] - 1])


class nin(nn.Module):
    """1x1 convolution as permute + Linear."""

    def __init__(self, dim_in: int, dim_out: int):
        super().__init__()
        self.lin_a = wn(nn.Linear(dim_in, dim_out))
        self.dim_out = dim_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.permute(0, 2, 3, 1)
        shp = [int(y) for y in x.size()]
        out = self.lin_a(x.contiguous().view(shp[0] * shp[1] * shp[2], shp[3]))
        shp[-1] = self.dim_out
        return out.view(shp).permute(0, 3, 1, 2)


class down_shifted_conv2d(nn.Module):
    def __init__(self, num_filters_in, num_filters_out, filter_size=(2, 3), stride=(1, 1), shift_output_down=False):
        super().__init__()
        self.conv = wn(nn.Conv2d(num_filters_in, num_filters_out, filter_size, stride))
        self.shift_output_down = shift_output_down
        self.pad = nn.ZeroPad2d((int((filter_size[1] - 1) / 2), int((filter_size[1] - 1) / 2), filter_size[0] - 1, 0))

    def forward(self, x):
        x = self.conv(self.pad(x))
        return down_shift(x) if self.shift_output_down else x


class down_shifted_deconv2d(nn.Module):
    def __init__(self, num_filters_in, num_filters_out, filter_size=(2, 3), stride=(1, 1)):
        super().__init__()
        self.deconv = wn(nn.ConvTranspose2d(num_filters_in, num_filters_out, filter_size, stride, output_padding=1))
        self.filter_size = filter_size

    def forward(self, x):
        x = self.deconv(x)
        xs = [int(y) for y in x.size()]
        return x[:, :, :(xs[2] - self.filter_size[0] + 1),
                 int((self.filter_size[1] - 1) / 2):(xs[3] - int((self.filter_size[1] - 1) / 2))]


class down_right_shifted_conv2d(nn.Module):
    def __init__(self, num_filters_in, num_filters_out, filter_size=(2, 2), stride=(1, 1), shift_output_right=False):
        super().__init__()
        self.pad = nn.ZeroPad2d((filter_size[1] - 1, 0, filter_size[0] - 1, 0))
        self.conv = wn(nn.Conv2d(num_filters_in, num_filters_out, filter_size, stride=stride))
        self.shift_output_right = shift_output_right

    def forward(self, x):
        x = self.conv(self.pad(x))
        return right_shift(x) if self.shift_output_right else x


class down_right_shifted_deconv2d(nn.Module):
    def __init__(self, num_filters_in, num_filters_out, filter_size=(2, 2), stride=(1, 1)):
        super().__init__()
        self.deconv = wn(nn.ConvTranspose2d(num_filters_in, num_filters_out, filter_size, stride, output_padding=1))
        self.filter_size = filter_size

    def forward(self, x):
        x = self.deconv(x)
        xs = [int(y) for y in x.size()]
        return x[:, :, :(xs[2] - self.filter_size[0] + 1), :(xs[3] - self.filter_size[1] + 1)]


class gated_resnet(nn.Module):
    """skip_connection: 0 none, 1 skip input of the same size, 2 skip input twice the size."""

    def __init__(self, num_filters, conv_op, skip_connection=0, dropout_p=0.5):
        super().__init__()
        self.skip_connection = skip_connection
        self.conv_input = conv_op(2 * num_filters, num_filters)
        if skip_connection != 0:
            self.nin_skip = nin(2 * skip_connection * num_filters, num_filters)
        self.dropout = nn.Dropout(dropout_p)
        self.conv_out = conv_op(2 * num_filters, 2 * num_filters)

    def forward(self, og_x, a=None):
        x = self.conv_input(concat_elu(og_x))
        if a is not None:
            x += self.nin_skip(concat_elu(a))
        x = concat_elu(x)
        x = self.dropout(x)
        x = self.conv_out(x)
        a, b = torch.chunk(x, 2, dim=1)
        return og_x + a * torch.sigmoid(b)


class PixelCNNLayer_up(nn.Module):
    def __init__(self, nr_resnet, nr_filters, dropout_p):
        super().__init__()
        self.nr_resnet = nr_resnet
        self.u_stream = nn.ModuleList([gated_resnet(nr_filters, down_shifted_conv2d, 0, dropout_p)
                                       for _ in range(nr_resnet)])
        self.ul_stream = nn.ModuleList([gated_resnet(nr_filters, down_right_shifted_conv2d, 1, dropout_p)
                                        for _ in range(nr_resnet)])

    def forward(self, u, ul):
        u_list, ul_list = [], []
        for i in range(self.nr_resnet):
            u = self.u_stream[i](u)
            ul = self.ul_stream[i](ul, a=u)
            u_list += [u]
            ul_list += [ul]
        return u_list, ul_list


class PixelCNNLayer_down(nn.Module):
    def __init__(self, nr_resnet, nr_filters, dropout_p):
        super().__init__()
        self.nr_resnet = nr_resnet
        self.u_stream = nn.ModuleList([gated_resnet(nr_filters, down_shifted_conv2d, 1, dropout_p)
                                       for _ in range(nr_resnet)])
        self.ul_stream = nn.ModuleList([gated_resnet(nr_filters, down_right_shifted_conv2d, 2, dropout_p)
                                        for _ in range(nr_resnet)])

    def forward(self, u, ul, u_list, ul_list):
        for i in range(self.nr_resnet):
            u = self.u_stream[i](u, a=u_list.pop())
            ul = self.ul_stream[i](ul, a=torch.cat((u, ul_list.pop()), 1))
        return u, ul


class PlainPixelCNN(nn.Module):
    """The port's ``PixelCNN`` (3 input channels, concat_elu), with the parameter layout of its checkpoints."""

    def __init__(self, nr_resnet: int = 5, nr_filters: int = 160, nr_logistic_mix: int = 10,
                 dropout_p: float = 0.5, input_channels: int = 3):
        super().__init__()
        self.nr_filters = nr_filters
        self.input_channels = input_channels
        self.nr_logistic_mix = nr_logistic_mix
        down_nr_resnet = [nr_resnet] + [nr_resnet + 1] * 2
        self.down_layers = nn.ModuleList([PixelCNNLayer_down(down_nr_resnet[i], nr_filters, dropout_p)
                                          for i in range(3)])
        self.up_layers = nn.ModuleList([PixelCNNLayer_up(nr_resnet, nr_filters, dropout_p) for _ in range(3)])
        self.downsize_u_stream = nn.ModuleList([down_shifted_conv2d(nr_filters, nr_filters, stride=(2, 2))
                                                for _ in range(2)])
        self.downsize_ul_stream = nn.ModuleList([down_right_shifted_conv2d(nr_filters, nr_filters, stride=(2, 2))
                                                 for _ in range(2)])
        self.upsize_u_stream = nn.ModuleList([down_shifted_deconv2d(nr_filters, nr_filters, stride=(2, 2))
                                              for _ in range(2)])
        self.upsize_ul_stream = nn.ModuleList([down_right_shifted_deconv2d(nr_filters, nr_filters, stride=(2, 2))
                                               for _ in range(2)])
        self.u_init = down_shifted_conv2d(input_channels + 1, nr_filters, filter_size=(2, 3), shift_output_down=True)
        self.ul_init = nn.ModuleList([
            down_shifted_conv2d(input_channels + 1, nr_filters, filter_size=(1, 3), shift_output_down=True),
            down_right_shifted_conv2d(input_channels + 1, nr_filters, filter_size=(2, 1), shift_output_right=True)])
        self.nin_out = nin(nr_filters, 10 * nr_logistic_mix)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xs = [int(y) for y in x.size()]
        padding = torch.ones(xs[0], 1, xs[2], xs[3], device=x.device, dtype=x.dtype)
        x = torch.cat((x, padding), 1)
        u_list = [self.u_init(x)]
        ul_list = [self.ul_init[0](x) + self.ul_init[1](x)]
        for i in range(3):
            u_out, ul_out = self.up_layers[i](u_list[-1], ul_list[-1])
            u_list += u_out
            ul_list += ul_out
            if i != 2:
                u_list += [self.downsize_u_stream[i](u_list[-1])]
                ul_list += [self.downsize_ul_stream[i](ul_list[-1])]
        u = u_list.pop()
        ul = ul_list.pop()
        for i in range(3):
            u, ul = self.down_layers[i](u, ul, u_list, ul_list)
            if i != 2:
                u = self.upsize_u_stream[i](u)
                ul = self.upsize_ul_stream[i](ul)
        return self.nin_out(F.elu(ul))
