"""``livefit report``: progressive validation of offline vs offline + online vs River, as Markdown,
PNG plots and ``summary.json`` (see :mod:`models.evaluation` for what is measured and how).

River runs in its own venv (``.venvs/river``, created on first use from
``models/river-requirements.txt``) because it needs a newer numpy than apache-flink allows.
"""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import time
import venv
from collections.abc import Callable
from pathlib import Path
from typing import Any

from livefit.config import Config
from models.evaluation import (
    BOOTSTRAP_RESAMPLES,
    FIT_SAMPLES,
    WARM_LABELS,
    Evaluation,
    attach_river,
    gain_interval,
    group_summary,
    groups,
    run,
    summarize,
)

REPO = Path(__file__).resolve().parents[1]
RIVER_REQUIREMENTS = REPO / "models" / "river-requirements.txt"
TARGET_AUC_GAIN = 0.03


def river_python(venv_dir: Path = REPO / ".venvs" / "river",
                 say: Callable[[str], None] = print) -> str:
    """The River venv's interpreter; the venv is created and pinned on first use (PyPI only)."""
    python = venv_dir / "bin" / "python"
    stamp = venv_dir / ".requirements"
    wanted = RIVER_REQUIREMENTS.read_text()
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return str(python)
    say(f"[report] installing River into {venv_dir} (one time, ~30 s)")
    venv.create(venv_dir, with_pip=True, clear=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    "-r", str(RIVER_REQUIREMENTS)], check=True)
    stamp.write_text(wanted)
    return str(python)


def _ci(interval: list[float] | None) -> str:
    return "" if not interval else f"; 95 % CI {interval[0]:+.4f} to {interval[1]:+.4f}"


def _added(served: dict[str, Any], without: dict[str, Any], metric: str,
           interval: list[float] | None) -> str:
    """What a part of the online learning adds to ``metric`` (served minus without it)."""
    a, b = served[f"{metric}_online"], without[f"{metric}_online"]
    if a is None or b is None:
        return ""
    return f"{a - b:+.4f}" + (f" ({interval[0]:+.4f} to {interval[1]:+.4f})" if interval else "")


def _gain_with_ci(group: dict[str, Any]) -> str:
    """ROC-AUC online minus offline, with its interval if the summary has one."""
    gain = group["auc_online"] - group["auc_offline"]
    auc_ci = (group.get("gain_ci95") or {}).get("auc")
    return f"{gain:+.4f}" + (f" ({auc_ci[0]:+.4f} to {auc_ci[1]:+.4f})" if auc_ci else "")


def _targets(s: dict[str, Any]) -> list[tuple[str, bool, str]]:
    """(target, met, by how much) for the issue's quality targets, with the differences' 95 %
    intervals where the summary has them (resampling customers, `gain_ci95`)."""
    warm, new = s["warm"], s["new"]
    ci = s.get("gain_ci95") or {}
    ci_warm, ci_new = ci.get("warm") or {}, ci.get("new") or {}
    gain = warm["auc_online"] - warm["auc_offline"]
    out = [
        (f"offline + online beats offline-only by >= {TARGET_AUC_GAIN} ROC-AUC on warm customers",
         gain >= TARGET_AUC_GAIN, f"{gain:+.4f} ({warm['auc_online']:.4f} vs {warm['auc_offline']:.4f}"
         f"{_ci(ci_warm.get('auc'))})"),
        ("offline + online has lower log loss than offline-only on warm customers",
         warm["logloss_online"] < warm["logloss_offline"],
         f"{warm['logloss_online'] - warm['logloss_offline']:+.4f}{_ci(ci_warm.get('logloss'))}"),
        ("never worse than offline-only for new customers (ROC-AUC)",
         new["auc_online"] >= new["auc_offline"],
         f"{new['auc_online'] - new['auc_offline']:+.4f}{_ci(ci_new.get('auc'))}"),
        ("never worse than offline-only for new customers (log loss)",
         new["logloss_online"] <= new["logloss_offline"],
         f"{new['logloss_online'] - new['logloss_offline']:+.4f}{_ci(ci_new.get('logloss'))}"),
    ]
    if warm.get("auc_river") is not None:
        out.append(("offline + online beats River's online logistic regression (warm, ROC-AUC)",
                    warm["auc_online"] > warm["auc_river"],
                    f"{warm['auc_online'] - warm['auc_river']:+.4f}"))
        out.append(("offline + online beats River's online logistic regression (all, ROC-AUC)",
                    s["all"]["auc_online"] > s["all"]["auc_river"],
                    f"{s['all']['auc_online'] - s['all']['auc_river']:+.4f}"))
    # The curve's start against its bulk (new vs warm customers), with the generator's ceiling
    # of each group: a rise with equal ceilings is the warm-up, not easier customers.
    aucs = [c["auc_online"] for c in s["warmup_curve"] if c["auc_online"] is not None]
    rise, last = s.get("warmup_rise_new_to_warm_ci95"), s.get("warmup_rise_ci95")
    ceiling = {g: (s.get("headroom", {}).get(g) or {}).get("auc_generator") for g in ("new", "warm")}
    out.append(("the warm-up curve rises with history length (warm customers above new ones)",
                warm["auc_online"] > new["auc_online"],
                f"{warm['auc_online'] - new['auc_online']:+.4f} ({new['auc_online']:.4f} new -> "
                f"{warm['auc_online']:.4f} warm{_ci(rise)}"
                + (f"; the generator's ceiling {ceiling['new']:.4f} new, {ceiling['warm']:.4f} warm"
                   if None not in ceiling.values() else "")
                + "); by bucket " + " -> ".join(f"{a:.3f}" for a in aucs)
                + (f" (last - first: 95 % CI {last[0]:+.3f} to {last[1]:+.3f})" if last else "")))
    return out


_MODEL_LABELS = {"offline": "offline only", "online": "offline + online (livefit)",
                 "river": "River online LR", "generator": "generator's own probability (ceiling)",
                 "offline_with_personal_from_labels": "offline + the labels' best estimate of the propensity"}


def _plot(s: dict[str, Any], out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curve = s["warmup_curve"]
    labels = [f"{lo}" if lo == hi else f"{lo}-{hi}" if hi < 10**8 else f"{lo}+"
              for lo, hi in (c["labels_before"] for c in curve)]
    files = []
    for metric, title in (("auc", "ROC-AUC (higher is better)"), ("logloss", "log loss (lower is better)")):
        fig, ax = plt.subplots(figsize=(7, 5))
        for model, style in (("offline", "o--"), ("online", "o-"), ("river", "s:"),
                             ("generator", "x-."), ("offline_with_personal_from_labels", "d:")):
            ys = [c.get(f"{metric}_{model}") for c in curve]
            if any(v is not None for v in ys):
                ax.plot(labels, [v if v is not None else float("nan") for v in ys], style,
                        label=_MODEL_LABELS[model])
        ax.set_xlabel("labels the customer's online model had learned when the event was scored")
        ax.set_title(f"Warm-up curve, seed {s['seed']}: {title}")
        ax.grid(alpha=0.3)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, fontsize=8)  # off the lines
        fig.tight_layout()
        name = f"warmup-{metric}.png"
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        files.append(name)
    cal = {m: c for m, c in s.get("calibration_warm", {}).items() if c}
    if cal:
        fig, ax = plt.subplots(figsize=(5.5, 5))
        top = max(max(b["mean_predicted"], b["observed"]) for c in cal.values() for b in c["bins"])
        ax.plot([0, top], [0, top], color="grey", lw=1, label="perfectly calibrated")
        for model, style in (("offline", "o--"), ("online", "o-"), ("river", "s:")):
            if model in cal:
                bins = cal[model]["bins"]
                ax.plot([b["mean_predicted"] for b in bins], [b["observed"] for b in bins], style,
                        label=f"{_MODEL_LABELS[model]} (ECE {cal[model]['ece']})")
        ax.set_xlabel("mean predicted probability (10 equal-count bins)")
        ax.set_ylabel("observed positive rate")
        ax.set_title(f"Calibration on warm customers, seed {s['seed']}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "calibration.png", dpi=110)
        plt.close(fig)
        files.append("calibration.png")
    return files



def _headroom_lines(s: dict[str, Any]) -> list[str]:
    """How much there was to learn, from the generator's ground truth, next to what was learned."""
    h, warm = s.get("headroom", {}).get("warm"), s["warm"]
    if not h:
        return []
    gap = h["auc_generator"] - warm["auc_offline"]
    share = (warm["auc_online"] - warm["auc_offline"]) / gap if gap > 0 else float("nan")
    told = {part: h[f"auc_offline_with_true_{part}"] - warm["auc_offline"]
            for part in ("personal", "fit", "engagement")}
    return ["", f"How much there is to learn (warm customers): the generator's own purchase "
            f"probability, which no model can beat on these labels, reaches ROC-AUC "
            f"{h['auc_generator']} (log loss {h['logloss_generator']}), {gap:+.4f} above offline; "
            f"livefit's online learning captures {share:.0%} of that gap. The offline model told "
            f"one true part of the generator's purchase logit (fitted on these rows) would gain: "
            f"each customer's personal propensity {told['personal']:+.4f} (the most any "
            f"per-customer bias could add), the product's fit to their tastes and price level "
            f"{told['fit']:+.4f}, how much their kind of interaction says "
            f"{told['engagement']:+.4f}."] + _from_labels_line(h, warm) + _fit_line(h, warm)


def _fit_line(h: dict[str, Any], warm: dict[str, Any]) -> list[str]:
    """What the customers' interactions could tell about the products' fit, at best."""
    bound = h.get("auc_offline_with_fit_from_interactions")
    if bound is None:
        return []
    return ["", f"The fit, too, is seen only through the customer: what they look at (their tastes "
            f"draw them) and how they engage (the better the fit, the more). Told the best estimate "
            f"of it that all their interactions up to the scored one allow (a posterior over their "
            f"tastes and price level, knowing how the generator draws them; {FIT_SAMPLES:,} draws from "
            f"that prior per customer, weighed by what they did), the offline model would gain "
            f"{bound - warm['auc_offline']:+.4f} (ROC-AUC {bound}): its features already hold "
            f"most of the fit the data shows. So by these two bounds most of the gap to the "
            f"generator's own probability is not in what the shop observes. (Each bound uses one "
            f"kind of evidence, labels for the propensity and interactions for the fit; both "
            f"together could tell a little more.)"]


def _from_labels_line(h: dict[str, Any], warm: dict[str, Any]) -> list[str]:
    """What the customers' labels could teach about their propensity, at best, and how much of
    it livefit's online learning has."""
    bound, left = (h.get(f"auc_{m}_with_personal_from_labels") for m in ("offline", "online"))
    if bound is None or left is None:
        return []
    return ["", f"But a learner sees the propensity only through the customer's labels, "
            f"{warm['positives'] / warm['labels']:.0%} of them positive, while the propensity "
            f"drifts. Told the best estimate of it that the labels learned before each score "
            f"allow (the Bayes posterior's mean, knowing how the generator drew the propensity, "
            f"its drift included, and the rest of each label's true logit; fitted on these rows "
            f"too), the offline model would gain {bound - warm['auc_offline']:+.4f} (ROC-AUC "
            f"{bound}): the most that learning a per-customer propensity online can add on this "
            f"workload. livefit's online learning gains {warm['auc_online'] - warm['auc_offline']:+.4f}"
            f", and told the same estimate it would gain {left - warm['auc_online']:+.4f} more "
            f"(ROC-AUC {left}): it already has what the labels tell."]


def _markdown(summaries: list[dict[str, Any]], plots: dict[int, list[str]], seconds: float) -> str:
    lines = ["# livefit model quality report", "",
             "Progressive validation with delayed labels on the seeded workload (`livefit report`): "
             "offline models trained on the first 70 % of the history, then every change event "
             "replayed in commit order through the job's own per-event logic; each interaction is "
             "scored before its label exists, and learned from only when the label resolves (an "
             "order within the horizon, or the horizon's event-time timer). Only predictions after "
             "the training window are evaluated.", "",
             "- **offline**: the personalised offline model alone (a job without online learning);",
             "- **online**: what livefit serves: cold-start model selection + the segment's shared "
             "drift correction + per-customer online residual on top of the offline logit;",
             "- **river**: River's `LogisticRegression` (StandardScaler, SGD 0.01) learning online "
             "from the same features and the same delayed labels, in its own venv.", "",
             f"*Warm* = scored when the customer had >= {WARM_LABELS} labeled events; *new* = scored "
             "before the customer had any labeled event.", ""]
    for s in summaries:
        lines += [f"## Seed {s['seed']}", "",
                  f"Workload: {s['workload']['interactions']:,} interactions, "
                  f"{s['workload']['customers']} customers, {s['workload']['history_days']} days; "
                  f"label horizon {s['workload']['label_horizon_s']:.0f} s. Cold-start model "
                  f"{'served' if s['cold_start_model_served'] else 'not served (it did not beat the personalised model on the holdout by the margin)'}.",
                  "", "| group | labels | positives | AUC offline | AUC online | AUC River | "
                  "log loss offline | log loss online | log loss River |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for group in ("warm", "new", "all"):
            g = s[group]
            lines.append(f"| {group} | {g['labels']:,} | {g['positives']:,} | {g['auc_offline']} | "
                         f"{g['auc_online']} | {g['auc_river']} | {g['logloss_offline']} | "
                         f"{g['logloss_online']} | {g['logloss_river']} |")
        lines += ["", f"Targets (95 % CI: the difference's interval over {BOOTSTRAP_RESAMPLES:,} resamples of "
                  "the customers, since one customer's rows are not independent; an interval "
                  "that includes 0 could be chance):", "", "| target | met | by |", "| --- | --- | --- |"]
        lines += [f"| {t} | {'yes' if ok else '**no**'} | {by} |" for t, ok, by in _targets(s)]
        lines += _headroom_lines(s)
        lines += ["", "Warm-up curve (quality by labels learned before the score; *generator* is the "
                  "generator's own purchase probability, the ceiling of each bucket; *labels' best* "
                  "is what the offline model would gain told the best estimate of the customer's "
                  "propensity their labels allow (above): the buckets hold different customers, so "
                  "compare models within a row):", "",
                  "| labels before | n | AUC offline | AUC online | AUC River | AUC generator | "
                  "online - offline (95 % CI) | labels' best - offline |",
                  "| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |"]
        for c in s["warmup_curve"]:
            lo, hi = c["labels_before"]
            best = c.get("auc_offline_with_personal_from_labels")
            best_gain = "" if best is None else f"{best - c['auc_offline']:+.4f}"
            lines.append(f"| {lo}-{hi if hi < 10**8 else '...'} | {c['labels']} | {c['auc_offline']} | "
                         f"{c['auc_online']} | {c['auc_river']} | {c.get('auc_generator')} | "
                         f"{_gain_with_ci(c)} | {best_gain} |")
        offsets = ", ".join(f"{seg} {v:+.3f}" for seg, v in s["shared_drift_offsets"].items())
        for key, what in (("without_shared_drift",
                           f"the shared per-segment drift correction (the generator drifts each "
                           f"segment's propensity by {s['workload']['segment_drift']} in logit over the "
                           f"history; final offsets: {offsets})"),
                          ("without_personal_residual", "the per-customer residual")):
            ab = s.get(key)
            if ab:
                cis = ab.get("gain_ci95") or {}
                lines += ["", f"Without {what}, online would be (what it adds: with minus without, "
                          "95 % CI from resampling customers):", "",
                          "| group | AUC online with / without | log loss online with / without | "
                          "AUC added (95 % CI) | log loss added (95 % CI) |",
                          "| --- | ---: | ---: | --- | --- |"]
                lines += [f"| {g} | {s[g]['auc_online']} / {ab[g]['auc_online']} | "
                          f"{s[g]['logloss_online']} / {ab[g]['logloss_online']} | "
                          f"{_added(s[g], ab[g], 'auc', (cis.get(g) or {}).get('auc'))} | "
                          f"{_added(s[g], ab[g], 'logloss', (cis.get(g) or {}).get('logloss'))} |"
                          for g in ("warm", "new", "all")]
        cal = s.get("calibration_warm", {})
        if any(cal.values()):
            eces = ", ".join(f"{m} {c['ece']}" for m, c in cal.items() if c)
            lines += ["", f"Calibration on warm customers (expected calibration error over 10 "
                      f"equal-count bins, lower is better): {eces}."]
        a = s["order_anomaly"]
        if "auc" in a:
            lines += ["", f"Order anomaly model (IsolationForest on normal-looking history, "
                      f"threshold = 2 % review budget): {a['orders']} orders after the training "
                      f"window, {a['anomalous_orders']} abnormal by the generator's ground truth; "
                      f"ROC-AUC {a['auc']}, average precision {a['average_precision']}, flagged "
                      f"{a['flagged']} (precision {a['precision']}, recall {a['recall']})."]
        for f in plots.get(s["seed"], []):
            lines += ["", f"![{f}](seed-{s['seed']}/{f})"]
        lines.append("")
    lines += [f"Generated by `livefit report` in {seconds:.0f} s.", ""]
    return "\n".join(lines)


def _ablation(cfg: Config, seed: int, served: Evaluation, **job_changes: Any) -> dict[str, Any]:
    """Online quality of the same replay with ``job_changes`` (e.g. one part switched off), and
    the 95 % interval of what that part adds: ``served``'s online predictions against the
    ablated ones on the same rows, resampling customers (``gain_ci95``)."""
    changed = dataclasses.replace(cfg, job=dataclasses.replace(cfg.job, **job_changes))
    ablated = run(seed, cfg=changed, data=dataclasses.replace(cfg.data, seed=seed), say=lambda _m: None)
    # Only the groups' quality: not summarize(), whose bootstraps and headroom fits go unused here.
    out: dict[str, Any] = {}
    for g, rows_g in groups(ablated.evaluated()).items():
        quality = group_summary(rows_g)
        out[g] = {k: quality[k] for k in ("auc_online", "logloss_online")}
    # The replay is deterministic in its labels, so both runs evaluate the same interactions with
    # the same label counts; the ablated probability takes the offline slot of a paired row.
    without = {r.interaction_id: r.p_online for r in ablated.evaluated()}
    rows = served.evaluated()
    if {r.interaction_id for r in rows} != set(without):
        raise RuntimeError(f"seed {seed}: the replay with {job_changes} evaluated other interactions "
                           "than the served one; the replay is not deterministic in its labels")
    paired = [dataclasses.replace(r, p_offline=without[r.interaction_id]) for r in rows]
    by_group = groups(paired)
    out["gain_ci95"] = {g: gain_interval(by_group[g]) for g in ("warm", "new")}
    return out


def report(seeds: list[int], out: Path, say: Callable[[str], None] = print,
           with_river: bool = True, cfg: Config | None = None) -> dict[str, Any]:
    """Evaluate each seed, write ``out/README.md``, plots per seed and ``out/summary.json``.

    ``summary.json`` holds the first seed's summary at the top level (the issue's keys:
    ``warm``/``new`` with ``auc_*``/``logloss_*`` and label counts) and every seed under ``seeds``.
    """
    t0 = time.monotonic()
    out.mkdir(parents=True, exist_ok=True)
    python = river_python(say=say) if with_river else None
    summaries, plots = [], {}
    for seed in seeds:
        cfg = cfg or Config()
        ev = run(seed, cfg=cfg, data=dataclasses.replace(cfg.data, seed=seed), say=say)
        seed_dir = out / f"seed-{seed}"
        seed_dir.mkdir(exist_ok=True)
        if python:
            say(f"[report] seed {seed}: River on the same {len(ev.ops):,} operations")
            attach_river(ev, python, seed_dir)
            for f in ("river-ops.jsonl", "river-predictions.json"):
                (seed_dir / f).unlink(missing_ok=True)
        s = summarize(ev)
        # What each part of the online learning adds: the same replay without it.
        if cfg.job.drift_publish_every_labels > 0:
            say(f"[report] seed {seed}: again without the shared per-segment correction")
            s["without_shared_drift"] = _ablation(cfg, seed, ev, drift_publish_every_labels=0)
        say(f"[report] seed {seed}: again without the per-customer residual")
        # An infinitely precise prior: the residual's weights and bias never move from zero.
        s["without_personal_residual"] = _ablation(cfg, seed, ev, online_prior_precision=math.inf,
                                                   online_prior_precision_bias=math.inf)
        s["targets"] = [{"target": t, "met": ok, "by": by} for t, ok, by in _targets(s)]
        summaries.append(s)
        plots[seed] = _plot(s, seed_dir)
        w = s["warm"]
        say(f"[report] seed {seed}: warm AUC offline {w['auc_offline']} / online {w['auc_online']}"
            f" / River {w['auc_river']}; log loss {w['logloss_offline']} / {w['logloss_online']}"
            f" / {w['logloss_river']}")
    summary = {**summaries[0], "seeds": summaries}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "README.md").write_text(_markdown(summaries, plots, time.monotonic() - t0))
    say(f"[report] wrote {out}/README.md, summary.json and plots ({time.monotonic() - t0:.0f}s)")
    return summary

