"""The benchmark's options (a dataclass; ``python -m benchmarks.run --help`` is generated from it)."""
from __future__ import annotations

from dataclasses import dataclass

from oe_core.cli_config import help_field, require

from .cases import CASES, ordered


@dataclass
class BenchConfig:
    """Measure the suite's PixelCNN++ / DMOL code against the pclucas14 port's own code (and the WRN OE step against
    the OE reference's loop), side by side, in one process."""

    device: str = help_field("cpu", "cpu, cuda, cuda:N or auto (cuda if available)")
    amp: str = help_field("none", "bf16: run the networks under bf16 autocast (likelihoods stay float32); the FLOP "
                                  "rate is then compared with the bf16 matmul peak", choices=("none", "bf16"))
    quick: bool = help_field(False, "tiny models and images (a smoke test of the harness, not a measurement)")
    cases: list[str] = help_field([], f"cases to run (default: all): {', '.join(ordered(CASES.names()))}")
    repeats: int = help_field(5, "timed calls per variant after the warm-up (fewer, but at least 3, when more would "
                                 "take a case past --case-seconds)")
    case_seconds: float = help_field(45.0, "time budget per case for the timed calls of both variants")
    threads: int = help_field(0, "CPU threads for torch (0: all cores)")
    channels_last: bool = help_field(False, "fast variants use the channels_last memory format (the run engine's "
                                            "--channels-last option)")
    linearity: bool = help_field(True, "also time the train step over several batch sizes and scoring over "
                                       "several data-set sizes, and fit a line to each")
    compile: bool = help_field(False, "run the suite's PixelCNN++ through torch.compile (minutes to compile on a "
                                      "small CPU; meant for GPUs)")
    cuda_graphs: bool = help_field(False, "capture the suite's train step (forward, loss, backward, fused Adam with "
                                          "the LR as a tensor) and its scoring batch as CUDA graphs (CUDA only)")
    port_dir: str = help_field("", "folder of a pclucas14/pixel-cnn-pp clone (default: ../shared/anchors/"
                                   "pixel-cnn-pp next to this repository)")
    seed: int = help_field(0, "seed for the random weights and inputs")
    json: str = help_field("", "where to write the JSON results (default: benchmarks/results/<device>[-bf16]"
                               "[-quick].json)")
    markdown_append: str = help_field("", "append the results as a markdown section to this file (e.g. "
                                          "docs/performance.md)")

    def validate(self) -> None:
        require(self.repeats >= 1, f"--repeats must be >= 1, got {self.repeats}")
        require(self.case_seconds > 0, f"--case-seconds must be positive, got {self.case_seconds}")
        require(self.threads >= 0, f"--threads must be >= 0, got {self.threads}")
        for name in self.cases:
            CASES.get(name)  # unknown names: one OEError listing the known ones

    def selected_cases(self) -> list[str]:
        return ordered([CASES.get(n).name for n in self.cases] if self.cases else CASES.names())
