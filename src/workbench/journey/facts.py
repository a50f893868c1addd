"""What the data says about each stage of a journey, per persona: the prefill of a grid.

The journey's stages are laid over the CRM stages (`journey_dataset`: each CRM stage is
relabelled with the journey stage covering it, so a visit to a journey stage lasts until
the deal enters a different journey stage). Then, per persona and journey stage:

- ``reached`` and ``reach_share``: deals that entered the stage or a later one, or won
  (`workbench.funnel.stage_reach`), and ``conversion`` onward with its interval: of the
  deals that reached the stage, the eventual share reaching the next one or beyond,
  censoring-aware (`workbench.funnel.stage_conversion`, the report's headline definition).
- ``median_days`` in the stage with its interval (`workbench.cycle.dwell.stage_dwell`, Kaplan-Meier
  of the first visit, deals still in it censored).
- ``items``: ranked labels per stage and metric: touchpoint ``channel`` and ``kind`` (each touch
  in the stage its deal last entered on or before it, as `workbench.profile.touchpoints.assign_stages`
  reads it, to the second), ``objection``
  (loss reasons of deals lost in the stage: their last open stage), ``role`` (share of the
  deals reaching the stage with a contact in the role).
- ``sentiment``: the mean VADER compound score (Hutto and Gilbert, 2014) of the notes and
  reasons of deals whose last open stage is this one; shown only where such texts exist.

Personas are the levels of a deal column (computed together in one pass, so switching
persona in the builder is a lookup) or any deal filter (`persona_facts`).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace
from functools import lru_cache

import numpy as np
import pandas as pd
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from .. import tables
from ..cycle.dwell import Entries, entries, stage_dwell
from ..dataset.groups import OVERALL
from ..dataset.model import Dataset
from ..drivers.reasons import MISSING
from ..exceptions import SmallSampleWarning, WorkbenchError, fixes
from ..funnel.conversion import stage_conversion, stage_reach
from ..profile.touchpoints import UNKNOWN
from .model import Journey, JourneyError, Persona, check_covers
from ..results import Result, axes

#: Deal columns read for the sentiment lane, when present.
TEXT_COLUMNS = ("notes", "note", "comments", "loss_reason", "win_reason")
#: VADER's own thresholds on the compound score.
POSITIVE, NEGATIVE = 0.05, -0.05
TOP = 3
STAGE_COLUMNS = ["persona", "stage", "deals", "reached", "reach_share", "reach_low", "reach_high", "still_in",
                 "entered", "next", "conversion", "conversion_low", "conversion_high", "drop_off", "advanced", "dropped",
                 "median_days", "median_low", "median_high", "lost_here"]
ITEM_COLUMNS = ["persona", "stage", "metric", "label", "count", "base", "share", "rank"]
SENTIMENT_COLUMNS = ["persona", "stage", "texts", "score", "tone"]


@dataclass(frozen=True)
class JourneyFacts(Result):
    """Per persona and journey stage, the numbers a grid shows (see the module docstring).

    ``stages``: one row per persona and stage (`STAGE_COLUMNS`); ``entered`` counts the deals
    with an entry into the stage (the conversion's denominator), ``reached`` also those that
    skipped past it; ``drop_off`` is the eventual share lost before moving on (with
    ``conversion`` it falls short of 1 by the share still open at the longest follow-up). ``items``: ranked labels per
    persona, stage and metric (``channel``, ``kind``, ``objection``, ``role``) with ``count``,
    ``base`` (what ``share`` divides by) and ``share``. ``sentiment``: ``texts``, mean
    ``score`` and ``tone`` per persona and stage. ``personas``: the labels, `OVERALL` first.
    """

    stages: pd.DataFrame
    items: pd.DataFrame
    sentiment: pd.DataFrame
    personas: list[str]
    stage_labels: list[str]
    as_of: pd.Timestamp
    notes: list[str] = field(default_factory=list)

    def persona(self, name: str) -> "JourneyFacts":
        """The facts of one persona only."""
        if name not in self.personas:
            raise JourneyError(f"No facts for persona {name!r}. " + fixes(f"use one of {self.personas}"))

        def pick(frame):
            return frame[frame["persona"] == name].reset_index(drop=True)

        return replace(self, stages=pick(self.stages), items=pick(self.items), sentiment=pick(self.sentiment),
                       personas=[name])

    def stage(self, persona: str, stage: str) -> dict:
        """The `stages` row of one persona and stage, as a dict."""
        rows = self.stages[(self.stages["persona"] == persona) & (self.stages["stage"] == stage)]
        if rows.empty:
            raise JourneyError(f"No facts for persona {persona!r}, stage {stage!r}. "
                               + fixes(f"use a stage of {self.stage_labels}"))
        return rows.iloc[0].to_dict()

    def top(self, persona: str, stage: str, metric: str, n: int = TOP) -> pd.DataFrame:
        """The ``n`` most frequent labels of a metric in one stage, most frequent first."""
        i = self.items
        rows = i[(i["persona"] == persona) & (i["stage"] == stage) & (i["metric"] == metric)]
        return rows.sort_values("rank").head(n).reset_index(drop=True)

    def tone(self, persona: str, stage: str) -> dict | None:
        """The sentiment row of one persona and stage, or None when no text was there to read."""
        s = self.sentiment
        rows = s[(s["persona"] == persona) & (s["stage"] == stage)]
        return None if rows.empty else rows.iloc[0].to_dict()

    @property
    def table(self) -> pd.DataFrame:
        """``stages``: one row per persona and journey stage."""
        return self.stages

    def findings(self):
        """Each persona's journey in one line, and the personas that win most and least often
        (`workbench.findings.persona_findings`); the journey of all deals when there are no personas."""
        from ..findings import Findings, journey_line, persona_findings

        out = persona_findings(self)
        if not out and self.personas:
            line = journey_line(self, self.personas[0])
            out = Findings([line] if line else [])
        return out

    def plot(self, *, ax=None):
        """Share of each persona's deals that reached each stage, one line per persona; returns the axes."""
        import numpy as np
        from matplotlib.ticker import PercentFormatter

        from ..plots import segment_colors, theme

        colors = segment_colors(self.personas)
        with theme():
            ax = axes(ax)
            x = np.arange(len(self.stage_labels))
            for persona in self.personas:
                part = self.stages[self.stages["persona"] == persona].set_index("stage").reindex(self.stage_labels)
                ax.plot(x, part["reach_share"], "o-", color=colors[persona], label=persona)
            ax.set_xticks(x, self.stage_labels, rotation=20, ha="right")
            ax.set_ylabel("Share of deals that reached the stage")
            ax.yaxis.set_major_formatter(PercentFormatter(1.0))
            ax.legend(loc="upper right")
        return ax

    def _repr_html_(self) -> str:
        return tables.to_html(self.stages, index=False)


def journey_dataset(dataset: Dataset, journey: Journey) -> Dataset:
    """The dataset with its open stages replaced by the journey's stages.

    Each stage-history row of a CRM stage is relabelled with the journey stage covering
    it; won and lost rows keep their names. Consecutive rows that now name the same
    journey stage continue one visit (as repeated rows do everywhere in the workbench).
    """
    check_covers(journey, dataset)
    labels = journey.stage_labels()
    clash = sorted(set(labels) & set(dataset.won_stages + dataset.lost_stages))
    if clash:
        raise JourneyError(f"Journey stage label(s) {clash} are also the data's won/lost stage names. "
                           + fixes("rename those journey stages"))
    label_of = {c: s.label for s in journey.stages for c in s.covers}
    if all(k == v for k, v in label_of.items()):
        return replace(dataset, stages=tuple(labels))
    stage = dataset.stage_history["stage"].astype(object)
    history = dataset.stage_history.assign(stage=stage.map(label_of).fillna(stage))
    return replace(dataset, stage_history=history, stages=tuple(labels))


def journey_facts(dataset: Dataset, journey: Journey, by: str | None = None, *, alpha: float = 0.05,
                  min_deals: int = 30, text_columns: tuple[str, ...] = TEXT_COLUMNS) -> JourneyFacts:
    """Facts for `OVERALL` and, with ``by``, for every level of that deal column with at
    least ``min_deals`` deals (smaller levels are left out and named in ``notes``)."""
    data = journey_dataset(dataset, journey)
    if by is not None and by not in data.deals:
        raise WorkbenchError(f"Deals have no column `{by}` to take personas from. "
                             + fixes(f"use one of {data.attributes}"))
    groups = _Groups.of(data, by, min_deals)
    notes = _size_notes(data, by, groups, min_deals)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SmallSampleWarning)  # counted in notes instead
        stages = _stage_table(data, groups, alpha, min_deals)
    items = [_touch_items(data, groups, notes), _objection_items(data, groups), _role_items(data, groups)]
    return JourneyFacts(stages=stages, items=_ranked(pd.concat(items, ignore_index=True)),
                        sentiment=_sentiment(data, groups, text_columns), personas=groups.names,
                        stage_labels=list(data.stages), as_of=data.as_of, notes=notes)


def persona_facts(dataset: Dataset, journey: Journey, persona: Persona, **options) -> JourneyFacts:
    """Facts for a persona defined by a deal filter, labelled with the persona's name."""
    subset = dataset.filter(persona.filter)
    if subset.deals.empty:
        raise JourneyError(f"Persona {persona.name!r} selects no deals with filter {persona.filter}. "
                           + fixes("check the filter's column names and values"))
    facts = journey_facts(subset, journey, **options)

    def rename(frame):
        return frame.assign(persona=persona.name)

    return replace(facts, stages=rename(facts.stages), items=rename(facts.items),
                   sentiment=rename(facts.sentiment), personas=[persona.name])


def own_facts(dataset: Dataset, journey: Journey, **options) -> JourneyFacts:
    """Facts of the journey's own persona: the deals its filter selects (all deals without one)."""
    if journey.persona.filter:
        return persona_facts(dataset, journey, journey.persona, **options)
    return journey_facts(dataset, journey, **options)


def personas_from_data(dataset: Dataset, column: str = "persona", *, min_deals: int = 30) -> list[Persona]:
    """One `Persona` per level of a deal column with at least ``min_deals`` deals, largest first."""
    if column not in dataset.deals:
        raise WorkbenchError(f"Deals have no column `{column}` to take personas from. "
                             + fixes(f"use one of {dataset.attributes}", "define personas by filter"))
    deals = dataset.deals
    sizes = deals[column].value_counts()
    out = []
    for level, n in sizes.items():
        if n < min_deals:
            continue
        part = deals[deals[column] == level]
        closed = part["outcome"].isin(["won", "lost"]).sum()
        won = (part["outcome"] == "won").sum()
        rate = f", {won / closed:.0%} of closed deals won" if closed else ""
        value = level.item() if hasattr(level, "item") else level  # numpy scalars to plain Python
        out.append(Persona(name=str(level), description=f"{n:,} deals{rate}.", filter={column: value}))
    return out


# --- pieces: integer arrays and bincounts, so a million deals take seconds -------------------

@dataclass(frozen=True)
class _Groups:
    """Who is counted where: per deal, its persona code (-1: only in `OVERALL`), and the
    stage-history arrays with each deal's last open stage and furthest progress."""

    code: np.ndarray  # per deal row
    labels: list[str]  # persona labels, code order
    entries: Entries
    last_open: np.ndarray  # per deal row: index of the last open stage entered, -1 none
    furthest: np.ndarray  # per deal row: furthest open stage index, K when won, -1 none

    @property
    def names(self) -> list[str]:
        return [OVERALL, *self.labels]

    @classmethod
    def of(cls, data: Dataset, by: str | None, min_deals: int) -> "_Groups":
        n, k = len(data.deals), len(data.stages)
        if by is None:
            code, labels = np.full(n, -1, np.int64), []
        else:
            levels = pd.Categorical(data.deals[by])
            sizes = np.bincount(levels.codes[levels.codes >= 0], minlength=len(levels.categories))
            big = np.flatnonzero(sizes >= min_deals)
            remap = np.full(len(levels.categories) + 1, -1, np.int64)
            remap[big] = np.arange(len(big))
            code = remap[levels.codes]  # code -1 (missing) reads remap[-1] = -1
            labels = [str(levels.categories[i]) for i in big]
        e = entries(data)
        is_open = e.rank < k
        last_open = np.full(n, -1, np.int64)
        rows = np.flatnonzero(is_open)
        last_open[e.deal[rows]] = e.rank[rows]  # rows are in time order: the last write wins
        progress = np.where(e.rank < k, e.rank, np.where(e.rank < k + len(data.won_stages), k, -1)).astype(np.int64)
        furthest = np.full(n, -1, np.int64)
        np.maximum.at(furthest, e.deal, progress)
        furthest[data.deals["outcome"].to_numpy() == "won"] = k
        return cls(code=code, labels=labels, entries=e, last_open=last_open, furthest=furthest)

    def tally(self, deal: np.ndarray, stage: np.ndarray, label: np.ndarray, n_stages: int,
              n_labels: int) -> np.ndarray:
        """``counts[g, stage, label]``: g = 0 for all deals, 1 + persona code for each persona."""
        cells = n_stages * n_labels
        key = stage.astype(np.int64) * n_labels + label
        out = np.zeros((len(self.labels) + 1, n_stages, n_labels), np.int64)
        out[0] = np.bincount(key, minlength=cells).reshape(n_stages, n_labels)
        g = self.code[deal]
        ok = g >= 0
        out[1:] = np.bincount(g[ok] * cells + key[ok], minlength=len(self.labels) * cells) \
            .reshape(len(self.labels), n_stages, n_labels)
        return out


def _size_notes(data: Dataset, by: str | None, groups: _Groups, min_deals: int) -> list[str]:
    if by is None:
        return []
    values = data.deals[by]
    small = values[(groups.code < 0) & values.notna().to_numpy()].value_counts()
    notes = [f"`{by}` = {level!r} has {n} deals (< {min_deals}): no grid of its own; its deals count in "
             f"{OVERALL!r}." for level, n in small.items()]
    missing = int(values.isna().sum())
    if missing:
        notes.append(f"{missing} deals have no `{by}`; they count only in {OVERALL!r}.")
    return notes


def _stage_table(data: Dataset, groups: _Groups, alpha: float, min_deals: int) -> pd.DataFrame:
    labels = list(data.stages)
    persona = np.asarray(groups.labels + [None], dtype=object)[groups.code]  # code -1 -> None
    keyed = replace(data, deals=data.deals.assign(_persona=persona)) if groups.labels else data
    key = "_persona" if groups.labels else None
    reach = stage_reach(keyed, key, alpha=alpha, min_deals=min_deals).table
    conv = stage_conversion(keyed, key, alpha=alpha, min_deals=min_deals).table
    if data.stage_history.empty:  # no visits to time: the days lane says so
        dwell = reach[["segment", "stage"]].assign(median_days=np.nan, median_low=np.nan, median_high=np.nan)
    else:
        dwell = stage_dwell(keyed, key, alpha=alpha, min_deals=min_deals).table
    conv = conv.assign(stage=conv["transition"].str.split("->").str[0],
                       next=conv["transition"].str.split("->").str[1]).rename(columns={"reached": "entered"})
    table = (reach.rename(columns={"share": "reach_share", "ci_low": "reach_low", "ci_high": "reach_high"})
             .drop(columns="entered")
             .merge(conv[["segment", "stage", "entered", "next", "conversion", "ci_low", "ci_high", "drop_off",
                          "advanced", "dropped"]].rename(columns={"ci_low": "conversion_low", "ci_high": "conversion_high"}),
                    on=["segment", "stage"], how="left")
             .merge(dwell[["segment", "stage", "median_days", "median_low", "median_high"]],
                    on=["segment", "stage"], how="left"))
    lost = np.flatnonzero((data.deals["outcome"].to_numpy() == "lost") & (groups.last_open >= 0))
    counts = groups.tally(lost, groups.last_open[lost], np.zeros(len(lost), np.int64), len(labels), 1)[:, :, 0]
    lost_here = pd.DataFrame({"segment": np.repeat(groups.names, len(labels)), "stage": labels * len(groups.names),
                              "lost_here": counts.ravel()})
    table = table.merge(lost_here, on=["segment", "stage"], how="left").rename(columns={"segment": "persona"})
    table["persona"] = pd.Categorical(table["persona"], categories=groups.names)
    table["stage"] = pd.Categorical(table["stage"], categories=labels)
    table = table.sort_values(["persona", "stage"], kind="stable")[STAGE_COLUMNS]
    return table.astype({"persona": object, "stage": object}).reset_index(drop=True)


def _items(counts: np.ndarray, groups: _Groups, stages: list[str], labels, metric: str,
           base: np.ndarray | None = None) -> pd.DataFrame:
    """Tidy rows of the non-zero ``counts[g, stage, label]``; ``base`` defaults to each (g, stage) total."""
    g, s, lab = np.nonzero(counts)
    if base is None:
        base = counts.sum(axis=2)
    return pd.DataFrame({"persona": np.asarray(groups.names, dtype=object)[g],
                         "stage": np.asarray(stages, dtype=object)[s],
                         "metric": metric, "label": np.asarray(labels, dtype=object)[lab],
                         "count": counts[g, s, lab], "base": base[g, s]})


def _codes(values) -> tuple[np.ndarray, np.ndarray]:
    """Integer codes and the labels they stand for (missing values labelled `UNKNOWN`)."""
    codes, uniques = pd.factorize(pd.Series(values, dtype=object).fillna(UNKNOWN), sort=True)
    return codes.astype(np.int64), np.asarray(uniques, dtype=object)


def _touch_items(data: Dataset, groups: _Groups, notes: list[str]) -> pd.DataFrame:
    """Touches per stage by channel and kind: each touch is in the stage its deal last entered on or
    before it (to the second). Touches without a known deal, after the deal closed, or before its
    first stage entry are counted in ``notes``, not in any stage."""
    touch = data.touchpoints
    if touch is None or "deal_id" not in touch or "occurred_at" not in touch or touch.empty:
        return pd.DataFrame(columns=ITEM_COLUMNS)
    k = len(data.stages)
    deal = pd.Index(data.deals["deal_id"]).get_indexer(touch["deal_id"].to_numpy())
    when = touch["occurred_at"].to_numpy("datetime64[s]").astype(np.int64)
    closed = data.deals["closed_at"].to_numpy("datetime64[s]")
    has_deal = deal >= 0
    after = np.zeros(len(deal), bool)
    after[has_deal] = ~np.isnat(closed[deal[has_deal]]) & (when[has_deal] > closed[deal[has_deal]].astype(np.int64))
    e = groups.entries
    start = min(int(when.min()), int(e.time.min() // 10**9)) if len(e.time) else int(when.min())
    entry_key = (e.deal.astype(np.int64) << 32) + (e.time // 10**9 - start)
    keep = np.flatnonzero(has_deal & ~after)
    pos = np.searchsorted(entry_key, (deal[keep] << 32) + (when[keep] - start), side="right") - 1
    found = (pos >= 0) & (e.deal[np.maximum(pos, 0)] == deal[keep])
    stage = np.where(found, e.rank[np.maximum(pos, 0)], -1)
    in_stage = stage >= 0
    in_stage &= stage < k
    left_out = {"without a known deal": int((~has_deal).sum()), "after their deal closed": int(after.sum()),
                "before the deal's first stage": int((~found).sum())}
    left_out = {what: n for what, n in left_out.items() if n}
    if left_out:
        notes.append("Touchpoints in no stage: " + ", ".join(f"{n:,} {what}" for what, n in left_out.items()) + ".")
    rows, stage = keep[in_stage], stage[in_stage]
    parts = []
    for metric in ("channel", "kind"):
        values = touch[metric].to_numpy(object)[rows] if metric in touch else np.full(len(rows), None, object)
        codes, labels = _codes(values)
        counts = groups.tally(deal[rows], stage, codes, k, len(labels))
        parts.append(_items(counts, groups, list(data.stages), labels, metric))
    return pd.concat(parts, ignore_index=True)


def _objection_items(data: Dataset, groups: _Groups) -> pd.DataFrame:
    """Loss reasons of the deals lost in each stage (their last open stage; `MISSING` when blank)."""
    if "loss_reason" not in data.deals:
        return pd.DataFrame(columns=ITEM_COLUMNS)
    lost = np.flatnonzero((data.deals["outcome"].to_numpy() == "lost") & (groups.last_open >= 0))
    codes, labels = _codes(data.deals["loss_reason"].to_numpy(object)[lost])
    labels = np.where(labels == UNKNOWN, MISSING, labels)
    counts = groups.tally(lost, groups.last_open[lost], codes, len(data.stages), len(labels))
    return _items(counts, groups, list(data.stages), labels, "objection")


def _role_items(data: Dataset, groups: _Groups) -> pd.DataFrame:
    """Per stage, the share of the deals reaching it (`workbench.funnel.stage_reach`'s ``reached``)
    with at least one contact in each role."""
    contacts = data.contacts
    if contacts is None or "deal_id" not in contacts or "role" not in contacts:
        return pd.DataFrame(columns=ITEM_COLUMNS)
    contacts = contacts[contacts["role"].notna()]
    deal = pd.Index(data.deals["deal_id"]).get_indexer(contacts["deal_id"].to_numpy())
    codes, labels = _codes(contacts["role"].to_numpy(object)[deal >= 0])
    deal = deal[deal >= 0]
    pair = np.unique(deal.astype(np.int64) * len(labels) + codes)
    deal, role = pair // max(len(labels), 1), pair % max(len(labels), 1)
    k = len(data.stages)
    counts = np.zeros((len(groups.names), k, len(labels)), np.int64)
    base = np.zeros((len(groups.names), k), np.int64)
    everyone = np.arange(len(data.deals))
    for a in range(k):
        on = groups.furthest[deal] >= a
        counts[:, a:a + 1, :] = groups.tally(deal[on], np.zeros(int(on.sum()), np.int64), role[on], 1, len(labels))
        reached = everyone[groups.furthest >= a]
        base[:, a] = groups.tally(reached, np.zeros(len(reached), np.int64), np.zeros(len(reached), np.int64), 1, 1)[:, 0, 0]
    return _items(counts, groups, list(data.stages), labels, "role", base=base)


def _ranked(items: pd.DataFrame) -> pd.DataFrame:
    if items.empty:
        return pd.DataFrame(columns=ITEM_COLUMNS)
    items = items.assign(share=items["count"] / items["base"])
    items = items.sort_values(["persona", "stage", "metric", "count", "label"],
                              ascending=[True, True, True, False, True], kind="stable")
    items["rank"] = items.groupby(["persona", "stage", "metric"]).cumcount() + 1
    return items[ITEM_COLUMNS].reset_index(drop=True)


@lru_cache(maxsize=1)
def _analyzer() -> SentimentIntensityAnalyzer:
    return SentimentIntensityAnalyzer()


def _sentiment(data: Dataset, groups: _Groups, text_columns: tuple[str, ...]) -> pd.DataFrame:
    """Mean VADER compound score of the texts of the deals whose last open stage is each stage
    (each distinct text scored once)."""
    k = len(data.stages)
    total = np.zeros((len(groups.names), k))
    count = np.zeros((len(groups.names), k), np.int64)
    for column in (c for c in text_columns if c in data.deals):
        text = data.deals[column].astype(object).to_numpy()
        rows = np.flatnonzero(pd.notna(text) & (groups.last_open >= 0))
        codes, uniques = pd.factorize(pd.Series(text[rows]).astype(str).str.strip())
        scores = np.array([_analyzer().polarity_scores(u)["compound"] if u else np.nan for u in uniques])
        ok = np.isfinite(scores[codes]) if len(codes) else np.zeros(0, bool)
        rows, codes = rows[ok], codes[ok]
        stage = groups.last_open[rows]
        ones = np.zeros(len(rows), np.int64)
        count += groups.tally(rows, stage, ones, k, 1)[:, :, 0]
        for g in range(len(groups.names)):
            sel = slice(None) if g == 0 else groups.code[rows] == g - 1
            total[g] += np.bincount(stage[sel], weights=scores[codes][sel], minlength=k)
    g, s = np.nonzero(count)
    out = pd.DataFrame({"persona": np.asarray(groups.names, dtype=object)[g],
                        "stage": np.asarray(data.stages, dtype=object)[s],
                        "texts": count[g, s], "score": total[g, s] / count[g, s]})
    out["tone"] = np.select([out["score"] >= POSITIVE, out["score"] <= NEGATIVE], ["positive", "negative"], "neutral")
    return out[SENTIMENT_COLUMNS]
