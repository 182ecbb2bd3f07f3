"""The MinHash band layout a `dedupe: {method: minhash}` rule compiles to.

Pure Python (no NumPy): planning never pays a heavy import, and the layout is part of the
clean stage's fingerprint, so the compiler alone decides it.
"""

from __future__ import annotations

# False negatives weigh 10x false positives when picking the band layout: a false positive costs
# an estimate from the sketches (and, near the threshold, one exact verification); a false
# negative is a duplicate kept.
FP_WEIGHT = 0.1
# Names the MinHash algorithm in cleaning fingerprints: change it when the groups found can change.
SKETCH = "oph-bands-3"  # 3: candidates from one-permutation bands of every row, staged (runtime/clean/near_stage.py)
_POINTS = 513


def _integrate(f, lo: float, hi: float) -> float:
    """The trapezoid rule on _POINTS evenly spaced points (what the NumPy version computed)."""
    step = (hi - lo) / (_POINTS - 1)
    ys = [f(lo + i * step) for i in range(_POINTS)]
    return step * (sum(ys) - (ys[0] + ys[-1]) / 2)


def band_layout(threshold: float, permutations: int) -> tuple[int, int]:
    """(bands, rows per band) with bands * rows == permutations (every bin of the sketch is in a
    band), minimising missed pairs above the threshold + FP_WEIGHT * candidates below it."""
    best = None
    for r in range(1, permutations + 1):
        if permutations % r:
            continue
        b = permutations // r
        fp = _integrate(lambda x: 1 - (1 - x ** r) ** b, 0.0, threshold)
        fn = _integrate(lambda x: (1 - x ** r) ** b, threshold, 1.0)
        cost = fn + FP_WEIGHT * fp
        if best is None or cost < best[0] - 1e-12:
            best = (cost, b, r)
    return best[1], best[2]
