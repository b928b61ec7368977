"""Speed and memory benchmarks: the suite's code side by side with "the plain way", in one process.

``python -m benchmarks.run`` (or ``scripts/bench.sh``) times each case -- PixelCNN++ training steps at a small and
at the paper config, the OE fine-tuning step, the DMOL loss alone, bpd scoring and the WRN-40-2 OE step -- for the
fast variant (this suite) and the plain variant (written the way the pclucas14 port / the OE reference code write
it), alternating the two after a warm-up, and reports images/s, peak memory, achieved FLOP rate as a fraction of
the measured matmul peak, the fast/plain ratios against the issue's targets, and the linearity of the cost in batch
and in dataset size.  See ``docs/performance.md``.
"""
