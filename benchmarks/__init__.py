"""Speed and memory benchmarks: the suite's code side by side with the code it replaces, in one process.

``python -m benchmarks.run`` (or ``scripts/bench.sh``) times each case for the suite and for its baseline: the
pclucas14 port's own PixelCNN++ code, and the OE reference's loop body for the WRN-40-2.  The cases are PixelCNN++
training steps at a small and at the paper config, the OE fine-tuning step, the DMOL loss alone, bpd scoring and
the WRN-40-2 OE step.  The two variants alternate after a warm-up.  The report gives images/s, peak memory, the
achieved FLOP rate as a fraction of the measured matmul peak, the suite/baseline ratios against the performance
targets (:mod:`benchmarks.targets`), and how the cost grows with batch and dataset size.  See
``docs/performance.md``.
"""
