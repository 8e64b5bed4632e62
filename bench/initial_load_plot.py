"""The initial load's rate over the load, as a PNG the docs show (matplotlib, Agg: no display needed)."""

from __future__ import annotations

from pathlib import Path

SMOOTHING_S = 10.0  # the rate is taken over a sliding window, so one slow second does not draw a cliff


def rate_curve(at_s: list[float], done: list[int], window_s: float) -> tuple[list[float], list[float]]:
    """(objects done, objects per second over the last `window_s`) at each sample after the first."""
    xs, ys = [], []
    start = 0
    for k in range(1, len(at_s)):
        while at_s[k] - at_s[start] > window_s and start < k - 1:
            start += 1
        spent = at_s[k] - at_s[start]
        if spent > 0:
            xs.append(done[k] / 1000)
            ys.append((done[k] - done[start]) / spent)
    return xs, ys


def plot_rate(at_s: list[float], done: list[int], noop_per_s: float, path: Path, figures: dict[str, float]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    objects = int(figures["initial_load_objects"])
    window_s = min(SMOOTHING_S, max(at_s[-1] / 20, 0.5))
    xs, ys = rate_curve(at_s, done, window_s)
    figure, axes = plt.subplots(figsize=(9, 4.5), dpi=110)
    axes.plot(xs, ys, color="#1f77b4", linewidth=1.4, label=f"exports applied per second ({window_s:g} s window)")
    axes.axhline(
        noop_per_s,
        color="#d62728",
        linestyle="--",
        linewidth=1,
        label=f"Celery no-op, same workers ({noop_per_s:.0f}/s)",
    )
    axes.axhline(
        figures["initial_load_per_s"],
        color="#2ca02c",
        linestyle=":",
        linewidth=1.2,
        label=f"whole load: {figures['initial_load_per_s']:.0f}/s",
    )
    axes.axvspan(0, objects / 10000, color="#999999", alpha=0.12)
    axes.axvspan(objects * 0.9 / 1000, objects / 1000, color="#999999", alpha=0.12)
    if "producer_s" in figures:
        enqueued_at = sum(1 for t in at_s if t <= figures["producer_s"])
        if 0 < enqueued_at <= len(done):
            axes.axvline(done[enqueued_at - 1] / 1000, color="#7f7f7f", linewidth=0.8)
            axes.annotate(
                "producer done",
                (done[enqueued_at - 1] / 1000, 0),
                xytext=(4, 6),
                textcoords="offset points",
                fontsize=8,
                color="#555555",
            )
    axes.set_xlim(0, objects / 1000)
    axes.set_ylim(0, max([*ys, noop_per_s]) * 1.15)
    axes.set_xlabel("objects applied (thousands)")
    axes.set_ylabel("objects per second")
    axes.set_title(
        f"Initial load of {objects:,} objects: {figures['initial_load_s']:.0f} s, "
        f"growth {figures['initial_load_growth']:.2f} (last tenth / first tenth, shaded)",
        fontsize=10,
    )
    axes.legend(loc="lower right", fontsize=8)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
