"""What the data says about each stage of a journey, per persona: the prefill of a grid.

The journey's stages are laid over the CRM stages (`journey_dataset`: each CRM stage is
relabelled with the journey stage covering it, so a visit to a journey stage lasts until
the deal enters a different journey stage). Then, per persona and journey stage:

- ``reached`` and ``reach_share``: deals that entered the stage or a later one, or won
  (`workbench.funnel.stage_reach`), and ``conversion`` onward with its interval: of the
  deals that reached the stage, the eventual share reaching the next one or beyond,
  censoring-aware (`workbench.funnel.stage_conversion`, the report's headline definition).
- ``median_days`` in the stage with its interval (`workbench.dwell.stage_dwell`, Kaplan-Meier
  of the first visit, deals still in it censored).
- ``items``: ranked labels per stage and metric: touchpoint ``channel`` and ``kind`` (touches
  while the deal was in the stage, `workbench.touchpoints.assign_stages`), ``objection``
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

from .cycle import OVERALL
from .dwell import stage_dwell
from .exceptions import SmallSampleWarning, WorkbenchError, fixes
from .funnel import stage_conversion, stage_reach
from .journey import Journey, JourneyError, Persona, check_covers
from .model import Dataset
from .reasons import MISSING, last_open_stage
from .touchpoints import deal_touches

#: Deal columns read for the sentiment lane, when present.
TEXT_COLUMNS = ("notes", "note", "comments", "loss_reason", "win_reason")
#: VADER's own thresholds on the compound score.
POSITIVE, NEGATIVE = 0.05, -0.05
TOP = 3
STAGE_COLUMNS = ["persona", "stage", "deals", "reached", "reach_share", "reach_low", "reach_high", "still_in",
                 "entered", "next", "conversion", "conversion_low", "conversion_high", "advanced", "dropped",
                 "median_days", "median_low", "median_high", "lost_here"]
ITEM_COLUMNS = ["persona", "stage", "metric", "label", "count", "base", "share", "rank"]
SENTIMENT_COLUMNS = ["persona", "stage", "texts", "score", "tone"]


@dataclass(frozen=True)
class JourneyFacts:
    """Per persona and journey stage, the numbers a grid shows (see the module docstring).

    ``stages``: one row per persona and stage (`STAGE_COLUMNS`); ``entered`` counts the deals
    with an entry into the stage (the conversion's denominator), ``reached`` also those that
    skipped past it. ``items``: ranked labels per
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

    def _repr_html_(self) -> str:
        return self.stages.to_html(index=False, float_format=lambda v: f"{v:.3g}")


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
    persona = _persona_labels(data, by, min_deals)
    notes = _size_notes(data, by, persona, min_deals)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SmallSampleWarning)  # counted in notes instead
        stages = _stage_table(data, by, persona, alpha, min_deals)
    items = [_touch_items(data, persona, notes), _objection_items(data, persona), _role_items(data, persona)]
    items = pd.concat([i for i in items if len(i)], ignore_index=True) if any(len(i) for i in items) else None
    return JourneyFacts(stages=stages, items=_ranked(items), sentiment=_sentiment(data, persona, text_columns),
                        personas=[OVERALL] + sorted(set(persona.dropna()) - {OVERALL}),
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
        out.append(Persona(name=str(level), description=f"{n:,} deals{rate}.", filter={column: str(level)}))
    return out


# --- pieces -------------------------------------------------------------------------------

def _persona_labels(data: Dataset, by: str | None, min_deals: int) -> pd.Series:
    """Per deal, its persona label (NaN: not a persona of its own), aligned with ``deals``."""
    if by is None:
        return pd.Series(np.nan, index=data.deals.index, dtype=object)
    values = data.deals[by].astype(object)
    sizes = values.value_counts()
    big = set(sizes[sizes >= min_deals].index)
    return values.where(values.isin(big)).map(lambda v: v if pd.isna(v) else str(v))


def _size_notes(data: Dataset, by: str | None, persona: pd.Series, min_deals: int) -> list[str]:
    if by is None:
        return []
    values = data.deals[by]
    small = values[persona.isna() & values.notna()].value_counts()
    notes = [f"`{by}` = {level!r} has {n} deals (< {min_deals}): no grid of its own; its deals count in "
             f"{OVERALL!r}." for level, n in small.items()]
    missing = int(values.isna().sum())
    if missing:
        notes.append(f"{missing} deals have no `{by}`; they count only in {OVERALL!r}.")
    return notes


def _stage_table(data: Dataset, by: str | None, persona: pd.Series, alpha: float, min_deals: int) -> pd.DataFrame:
    labels = list(data.stages)
    keyed = data if by is None else replace(data, deals=data.deals.assign(_persona=persona))
    key = None if by is None else "_persona"
    reach = stage_reach(keyed, key, alpha=alpha, min_deals=min_deals).table
    conv = stage_conversion(keyed, key, alpha=alpha, min_deals=min_deals).table
    dwell = stage_dwell(keyed, key, alpha=alpha, min_deals=min_deals).table
    conv = conv.assign(stage=conv["transition"].str.split("->").str[0],
                       next=conv["transition"].str.split("->").str[1]).rename(columns={"reached": "entered"})
    table = (reach.rename(columns={"share": "reach_share", "ci_low": "reach_low", "ci_high": "reach_high"})
             .drop(columns="entered")
             .merge(conv[["segment", "stage", "entered", "next", "conversion", "ci_low", "ci_high", "advanced", "dropped"]]
                    .rename(columns={"ci_low": "conversion_low", "ci_high": "conversion_high"}),
                    on=["segment", "stage"], how="left")
             .merge(dwell[["segment", "stage", "median_days", "median_low", "median_high"]],
                    on=["segment", "stage"], how="left"))
    lost = _lost_here(data, persona)
    table = table.merge(lost, on=["segment", "stage"], how="left")
    table["lost_here"] = table["lost_here"].fillna(0).astype(int)
    table = table.rename(columns={"segment": "persona"})
    table["stage"] = pd.Categorical(table["stage"], categories=labels)
    return table.sort_values(["persona", "stage"], key=_overall_first, kind="stable")[STAGE_COLUMNS] \
        .astype({"stage": object}).reset_index(drop=True)


def _overall_first(column: pd.Series) -> pd.Series:
    if column.name == "persona":
        return column.map(lambda p: (p != OVERALL, p))
    return column


def _with_overall(frame: pd.DataFrame, persona_of_deal: pd.Series) -> pd.DataFrame:
    """``frame`` (with ``deal_id``) once as `OVERALL` and once per persona of its deal."""
    mapped = frame.assign(persona=frame["deal_id"].map(persona_of_deal))
    return pd.concat([frame.assign(persona=OVERALL), mapped[mapped["persona"].notna()]], ignore_index=True)


def _persona_of_deal(data: Dataset, persona: pd.Series) -> pd.Series:
    return pd.Series(persona.to_numpy(), index=data.deals["deal_id"].to_numpy())


def _lost_here(data: Dataset, persona: pd.Series) -> pd.DataFrame:
    lost = data.deals.loc[data.deals["outcome"] == "lost", ["deal_id"]]
    stage = last_open_stage(data)
    lost = lost.assign(stage=lost["deal_id"].map(stage)).dropna(subset=["stage"])
    both = _with_overall(lost, _persona_of_deal(data, persona))
    return both.groupby(["persona", "stage"]).size().rename("lost_here").reset_index() \
        .rename(columns={"persona": "segment"})


def _touch_items(data: Dataset, persona: pd.Series, notes: list[str]) -> pd.DataFrame:
    """Touch counts per persona, stage, and channel or kind (`workbench.touchpoints.deal_touches`:
    touches without a deal or after their deal closed are left out, and counted in ``notes``)."""
    if data.touchpoints is None or "occurred_at" not in data.touchpoints:
        return pd.DataFrame(columns=ITEM_COLUMNS)
    t, excluded = deal_touches(data)
    left_out = {k: v for k, v in excluded.items() if v}
    if left_out:
        notes.append("Touchpoints left out: " + ", ".join(f"{v:,} {k.replace('_', ' ')}" for k, v in left_out.items())
                     + "; touches before a deal's first stage entry are not in any stage.")
    t = t[t["stage"].isin(data.stages)]
    both = _with_overall(t, _persona_of_deal(data, persona))
    parts = []
    for metric in ("channel", "kind"):
        counts = both.rename(columns={metric: "label"}).groupby(["persona", "stage", "label"]).size() \
            .rename("count").reset_index()
        counts["base"] = counts.groupby(["persona", "stage"])["count"].transform("sum")
        parts.append(counts.assign(metric=metric))
    return pd.concat(parts, ignore_index=True)


def _objection_items(data: Dataset, persona: pd.Series) -> pd.DataFrame:
    if "loss_reason" not in data.deals:
        return pd.DataFrame(columns=ITEM_COLUMNS)
    lost = data.deals.loc[data.deals["outcome"] == "lost", ["deal_id", "loss_reason"]]
    lost = lost.assign(stage=lost["deal_id"].map(last_open_stage(data))).dropna(subset=["stage"])
    both = _with_overall(lost, _persona_of_deal(data, persona))
    label = both["loss_reason"].astype(object).where(both["loss_reason"].notna(), MISSING)
    counts = both.assign(label=label).groupby(["persona", "stage", "label"]).size().rename("count").reset_index()
    counts["base"] = counts.groupby(["persona", "stage"])["count"].transform("sum")
    return counts.assign(metric="objection")


def _role_items(data: Dataset, persona: pd.Series) -> pd.DataFrame:
    contacts = data.contacts
    if contacts is None or "deal_id" not in contacts or "role" not in contacts:
        return pd.DataFrame(columns=ITEM_COLUMNS)
    pairs = contacts.loc[contacts["deal_id"].notna() & contacts["role"].notna(), ["deal_id", "role"]] \
        .drop_duplicates()
    furthest = _furthest_stage(data)
    pairs = pairs.assign(furthest=pairs["deal_id"].map(furthest).fillna(-1).astype(int))
    both = _with_overall(pairs, _persona_of_deal(data, persona))
    persona_reach = _with_overall(pd.DataFrame({"deal_id": furthest.index, "furthest": furthest.to_numpy()}),
                                  _persona_of_deal(data, persona))
    parts = []
    for a, stage in enumerate(data.stages):
        on = both[both["furthest"] >= a]
        counts = on.groupby(["persona", "role"]).size().rename("count").reset_index()
        base = persona_reach[persona_reach["furthest"] >= a].groupby("persona").size()
        counts["base"] = counts["persona"].map(base)
        parts.append(counts.rename(columns={"role": "label"}).assign(stage=stage, metric="role"))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=ITEM_COLUMNS)


def _furthest_stage(data: Dataset) -> pd.Series:
    """Per deal id, the index of the furthest open stage entered (a win: past the last one)."""
    k = len(data.stages)
    rank = {s: i for i, s in enumerate(data.stages)}
    rank.update({s: k for s in data.won_stages})
    h = data.stage_history
    r = h["stage"].map(rank)
    furthest = r[r.notna()].groupby(h.loc[r.notna(), "deal_id"]).max().astype(int)
    won = data.deals.loc[data.deals["outcome"] == "won", "deal_id"]
    furthest = furthest.reindex(data.deals["deal_id"]).fillna(-1).astype(int)
    furthest[won.to_numpy()] = k
    return furthest


def _ranked(items: pd.DataFrame | None) -> pd.DataFrame:
    if items is None or items.empty:
        return pd.DataFrame(columns=ITEM_COLUMNS)
    items = items.assign(share=items["count"] / items["base"])
    items = items.sort_values(["persona", "stage", "metric", "count", "label"],
                              ascending=[True, True, True, False, True], kind="stable")
    items["rank"] = items.groupby(["persona", "stage", "metric"]).cumcount() + 1
    return items[ITEM_COLUMNS].reset_index(drop=True)


@lru_cache(maxsize=4096)
def _vader(text: str) -> float:
    return _analyzer().polarity_scores(text)["compound"]


@lru_cache(maxsize=1)
def _analyzer():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def _sentiment(data: Dataset, persona: pd.Series, text_columns: tuple[str, ...]) -> pd.DataFrame:
    columns = [c for c in text_columns if c in data.deals]
    if not columns:
        return pd.DataFrame(columns=SENTIMENT_COLUMNS)
    stage = data.deals["deal_id"].map(last_open_stage(data))
    texts = pd.concat([pd.DataFrame({"deal_id": data.deals["deal_id"], "stage": stage, "text": data.deals[c]})
                       for c in columns], ignore_index=True)
    texts = texts[texts["stage"].notna() & texts["text"].notna()]
    texts = texts[texts["text"].astype(str).str.strip() != ""]
    if texts.empty:
        return pd.DataFrame(columns=SENTIMENT_COLUMNS)
    unique = pd.unique(texts["text"].astype(str))
    score_of = pd.Series([_vader(t) for t in unique], index=unique)
    texts = texts.assign(score=texts["text"].astype(str).map(score_of))
    both = _with_overall(texts, _persona_of_deal(data, persona))
    out = both.groupby(["persona", "stage"]).agg(texts=("score", "size"), score=("score", "mean")).reset_index()
    out["tone"] = np.select([out["score"] >= POSITIVE, out["score"] <= NEGATIVE], ["positive", "negative"], "neutral")
    return out[SENTIMENT_COLUMNS]
