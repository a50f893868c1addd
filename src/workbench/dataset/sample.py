"""Seeded sample CRM data, and the ground truth an analysis of it should recover.

Deals move through ``Lead -> Qualified -> Discovery -> Proposal -> Negotiation`` as a
semi-Markov process. From an open stage the next move is one of *advance* (to the
next stage; from Negotiation that is Won), *skip* (two stages ahead; from Proposal
that is Won), *regress* (one stage back; not from Lead) or *Lost*, drawn from a
multinomial logit with Lost as the base outcome::

    advance: a[stage] + x        skip: s[stage] + x        regress: r[stage]
    x = persona + channel + LOG_AMOUNT_EFFECT * log(amount / AMOUNT_CENTER)
        + DECISION_MAKER_EFFECT * (a contact is a decision maker)

with ``a, s, r`` the columns of `STAGE_LOGITS`; so the coefficients in `COEFFICIENTS`
are the true effects on the log-odds of advancing (and of skipping) against being
lost (``log_amount`` per unit of natural log). Region, industry, product and owner
have no direct effect (product acts only through the amount). The days until the
next move are ``ceil`` of a gamma draw whose mean depends on the stage, the persona,
the channel and on whether the move is to Lost; so every deal's stage entries are on
distinct days, while many deals share dates. The 25th move is forced to Lost, so
every journey ends.

`generate` simulates full journeys, then cuts them at ``as_of``: later stage entries
and touchpoints are dropped and deals still running are open. The truth
(`workbench.dataset.sample_truth.Truth`) comes from a separate, larger simulation of the
same process that is never cut.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from ..exceptions import WorkbenchError, fixes
from ..seeds import seeded_rng
from .sample_truth import Journeys, Truth

STAGES = ("Lead", "Qualified", "Discovery", "Proposal", "Negotiation")
WON_STAGES = ("Won",)
LOST_STAGES = ("Lost",)
_K = len(STAGES)  # stage codes: open 0..4, Won 5, Lost 6

# Per level: (share of deals, effect on the log-odds of advancing, dwell-time multiplier).
PERSONAS = {
    "Executive sponsor": (0.10, 0.40, 0.85),
    "Economic buyer": (0.22, 0.20, 0.95),
    "Technical evaluator": (0.28, 0.00, 1.10),
    "End user champion": (0.22, -0.15, 1.00),
    "Procurement": (0.18, -0.35, 1.30),
}
CHANNELS = {
    "Referral": (0.12, 0.35, 0.85),
    "Partner": (0.13, 0.15, 1.10),
    "Inbound": (0.35, 0.00, 0.90),
    "Event": (0.15, -0.10, 1.00),
    "Outbound": (0.25, -0.30, 1.15),
}
LOG_AMOUNT_EFFECT = -0.25
DECISION_MAKER_EFFECT = 0.40
AMOUNT_CENTER = 20_000.0
# Per open stage: logits of (advance, skip, regress) against Lost, at the reference levels.
STAGE_LOGITS = np.array([
    [0.55, -2.2, -np.inf],   # Lead
    [1.20, -2.0, -1.4],      # Qualified
    [1.40, -2.2, -1.2],      # Discovery
    [1.50, -2.8, -1.0],      # Proposal
    [1.80, -np.inf, -1.0],   # Negotiation
])
DWELL_DAYS = np.array([22.0, 24.0, 30.0, 24.0, 20.0])  # mean days in each open stage
DWELL_SHAPE = 1.6  # gamma shape: coefficient of variation 0.79
LOST_DWELL = 1.5  # deals linger before someone marks them lost
MAX_MOVES = 25
HISTORY_DAYS = 730  # deals are created over the two years before as_of
GROWTH = 0.0035  # per day: more deals are created recently, as in a growing business

ROLES = {"Decision maker": 0.15, "Influencer": 0.30, "User": 0.25, "Champion": 0.15, "Gatekeeper": 0.15}
REGIONS = {"North America": 0.42, "EMEA": 0.33, "APAC": 0.17, "LATAM": 0.08}
OWNERS = ("Alex Morgan", "Priya Shah", "Dan Okafor", "Jonas Weber", "Emma Dubois", "Luca Rossi",
          "Kenji Tanaka", "Mei Lin", "Sara Lindqvist", "Maria Garcia", "Diego Alvarez", "Ana Costa")  # 3 per region
INDUSTRIES = {"Software": 0.25, "Financial services": 0.18, "Healthcare": 0.15,
              "Manufacturing": 0.17, "Retail": 0.13, "Education": 0.12}
PRODUCTS = {"Core": (0.5, 0.0), "Analytics": (0.3, 0.35), "Enterprise suite": (0.2, 0.9)}  # share, log-amount shift
LOSS_REASONS = ("No decision", "Timing", "Competitor", "Price", "Missing feature")
LOSS_BY_STAGE = np.array([  # P(reason | stage the deal was lost in)
    [0.45, 0.30, 0.08, 0.05, 0.12],
    [0.35, 0.25, 0.15, 0.08, 0.17],
    [0.25, 0.20, 0.22, 0.13, 0.20],
    [0.20, 0.15, 0.28, 0.30, 0.07],
    [0.15, 0.12, 0.30, 0.38, 0.05],
])
WIN_REASONS = {"Product fit": 0.35, "Relationship": 0.20, "Price": 0.15, "Time to value": 0.18, "Integrations": 0.12}
# Touchpoints: (channel, kind) pairs and their weights per open stage; mean touches per visit.
TOUCH_KINDS = (("Email", "email"), ("Web", "web visit"), ("Web", "content download"),
               ("Paid social", "web visit"), ("Paid social", "content download"),
               ("Events", "webinar"), ("Events", "meeting"), ("Sales", "call"), ("Sales", "meeting"))
TOUCH_WEIGHTS = np.array([
    [3, 3, 2, 2, 2, 2, 1, 2, 1],
    [3, 2, 2, 1, 1, 2, 1, 3, 2],
    [3, 2, 2, 1, 1, 1, 1, 3, 3],
    [3, 1, 1, 0.5, 0.5, 0.5, 1, 3, 4],
    [3, 1, 0.5, 0.5, 0.5, 0.5, 1, 3, 4],
], float)
TOUCHES_PER_VISIT = np.array([2.0, 2.0, 2.5, 2.0, 1.5])


def _rng(seed: str, part: str) -> np.random.Generator:
    """A generator seeded from a string, one independent stream per part."""
    return seeded_rng(f"{seed}/{part}")


def _choose(rng, n, probs):
    """``n`` draws of a category code with probabilities ``probs``."""
    return rng.choice(len(probs), size=n, p=np.asarray(probs, float) / np.sum(probs)).astype(np.int8)


def _choose_rows(rng, weights):
    """One category code per row of the weight matrix ``weights`` (inverse CDF)."""
    cum = np.cumsum(weights, axis=1)
    r = rng.random(len(cum)) * cum[:, -1]
    return (r[:, None] >= cum[:, :-1]).sum(axis=1).astype(np.int8)


def _choose_by(rng, codes, weights) -> np.ndarray:
    """One category per row, with the probabilities of row ``codes`` of ``weights`` (memory O(rows))."""
    cum = np.cumsum(weights / weights.sum(axis=1, keepdims=True), axis=1)
    r = rng.random(len(codes))
    out = np.zeros(len(codes), np.int8)
    for j in range(weights.shape[1] - 1):
        out += r >= cum[codes, j]
    return out


def _column(values, levels):
    """Columns of one effect per level, from the parameter tables above."""
    return np.array([v[levels] for v in values.values()])


COEFFICIENTS = pd.DataFrame(
    [("persona", level, effect) for level, (_, effect, _) in PERSONAS.items()]
    + [("channel", level, effect) for level, (_, effect, _) in CHANNELS.items()]
    + [("log_amount", None, LOG_AMOUNT_EFFECT), ("decision_maker", None, DECISION_MAKER_EFFECT)],
    columns=["variable", "level", "coefficient"],
)
COEFFICIENTS.insert(0, "term", [v if lv is None else f"{v}[{lv}]" for v, lv in
                                zip(COEFFICIENTS["variable"], COEFFICIENTS["level"])])


def _population(rng, n: int) -> dict:
    """Accounts, deals with attributes and contacts, and their full journeys."""
    n_acc = max(1, int(n * 0.4))
    acc = {
        "industry": _choose(rng, n_acc, list(INDUSTRIES.values())),
        "region": _choose(rng, n_acc, list(REGIONS.values())),
        "employees": np.clip(np.rint(rng.lognormal(5.0, 1.5, n_acc)), 5, 250_000).astype(np.int64),
    }
    acc["revenue"] = np.round(acc["employees"] * rng.lognormal(np.log(150_000), 0.5, n_acc), -3)
    # Every account has a deal; the rest go to random accounts (several deals per account).
    account = np.concatenate([rng.permutation(n_acc), rng.integers(0, n_acc, n - n_acc)])[:n]
    d = {"account": account, "persona": _choose(rng, n, _column(PERSONAS, 0)),
         "channel": _choose(rng, n, _column(CHANNELS, 0)), "product": _choose(rng, n, _column(PRODUCTS, 0))}
    d["owner"] = (acc["region"][account] * 3 + rng.integers(0, 3, n)).astype(np.int8)
    log_emp = np.log(acc["employees"][account]) - 5.0
    d["amount"] = np.maximum(500.0, np.round(np.exp(
        np.log(15_000) + 0.3 * log_emp + _column(PRODUCTS, 1)[d["product"]] + rng.normal(0, 0.7, n)), -2))
    # Contacts: 1-6 per deal; the first has the deal's persona.
    n_con = (1 + rng.binomial(5, 0.45, n)).astype(np.int64)
    start = np.r_[0, np.cumsum(n_con)[:-1]]
    role = _choose(rng, int(n_con.sum()), list(ROLES.values()))
    con_persona = _choose(rng, len(role), _column(PERSONAS, 0))
    con_persona[start] = d["persona"]
    d["decision_maker"] = np.add.reduceat((role == 0).astype(np.int64), start) > 0
    x = (_column(PERSONAS, 1)[d["persona"]] + _column(CHANNELS, 1)[d["channel"]]
         + LOG_AMOUNT_EFFECT * np.log(d["amount"] / AMOUNT_CENTER) + DECISION_MAKER_EFFECT * d["decision_maker"])
    pace = _column(PERSONAS, 2)[d["persona"]] * _column(CHANNELS, 2)[d["channel"]]
    d.update(_journeys(rng, x, pace))
    d["loss_reason"] = _choose_by(rng, np.maximum(d["lost_in"], 0), LOSS_BY_STAGE)
    d["win_reason"] = _choose(rng, n, list(WIN_REASONS.values()))
    contacts = {"deal": np.repeat(np.arange(n), n_con), "role": role, "persona": con_persona,
                "start": start, "count": n_con}
    return {"accounts": acc, "deals": d, "contacts": contacts}


def _journeys(rng, x, pace) -> dict:
    """Run every deal to Won or Lost, one vectorized step per move."""
    n = len(x)
    state = np.zeros(n, np.int8)
    day = np.zeros(n, np.int32)
    lost_in = np.full(n, -1, np.int8)
    rec = [(np.arange(n, dtype=np.int32), state.copy(), day.copy())]
    active = np.arange(n, dtype=np.int32)
    for move in range(1, MAX_MOVES + 1):
        s = state[active]
        logits = STAGE_LOGITS[s]
        xa = x[active]
        w = np.exp(np.column_stack([logits[:, 0] + xa, logits[:, 1] + xa, logits[:, 2], np.zeros(len(s))]))
        choice = _choose_rows(rng, w)
        if move == MAX_MOVES:
            choice[:] = 3
        new = np.select([choice == 0, choice == 1, choice == 2], [s + 1, s + 2, s - 1], _K + 1).astype(np.int8)
        lost = new == _K + 1
        mean = DWELL_DAYS[s] * pace[active] * np.where(lost, LOST_DWELL, 1.0)
        dwell = np.ceil(rng.gamma(DWELL_SHAPE, size=len(s)) * mean / DWELL_SHAPE).astype(np.int32)
        day[active] += np.maximum(dwell, 1)
        state[active] = new
        lost_in[active[lost]] = s[lost]
        rec.append((active, new, day[active]))
        active = active[new < _K]
        if not len(active):
            break
    deal, stage, days = (np.concatenate(parts) for parts in zip(*rec))
    order = np.argsort(deal, kind="stable")  # steps are chronological, so this sorts each deal by time
    return {"path_deal": deal[order], "path_stage": stage[order], "path_day": days[order],
            "won": state == _K, "days_to_close": day, "lost_in": lost_in}


def _labels(d: dict) -> pd.DataFrame:
    """Per-deal attributes as categoricals, for the truth."""
    cat = pd.Categorical.from_codes
    return pd.DataFrame({
        "persona": cat(d["persona"], list(PERSONAS)), "channel": cat(d["channel"], list(CHANNELS)),
        "product": cat(d["product"], list(PRODUCTS)), "amount": d["amount"],
        "decision_maker": d["decision_maker"],
    })


def _full_journeys(pop: dict) -> Journeys:
    """The uncut journeys of a population, for `Truth`."""
    d = pop["deals"]
    return Journeys(_labels(d), d["path_deal"], d["path_stage"], d["path_day"])


def _ids(prefix: str, n: int) -> np.ndarray:
    """``prefix`` + zero-padded 1..n; joining precomputed halves is ~4x faster than formatting each."""
    width = max(6, len(str(n)))
    tails = [f"{i:03d}" for i in range(1000)]
    heads = [f"{prefix}{i:0{width - 3}d}" for i in range(n // 1000 + 1)]
    return np.array([h + t for h in heads for t in tails][1:n + 1], dtype=object)


def _take(levels, codes) -> np.ndarray:
    """Object array of labels; the strings are shared, so this is cheap for millions of rows."""
    return np.array(list(levels) + [None], dtype=object)[codes]


def _observe(pop: dict, rng, as_of: pd.Timestamp) -> dict[str, pd.DataFrame]:
    """Date the journeys and cut them at ``as_of``: the canonical tables."""
    d, acc, con = pop["deals"], pop["accounts"], pop["contacts"]
    n = len(d["persona"])
    # Ages: truncated exponential (more deals recently); oldest first so ids follow creation.
    u = rng.random(n)
    age = np.sort(np.floor(-np.log1p(-u * -np.expm1(-GROWTH * HISTORY_DAYS)) / GROWTH).astype(np.int64))[::-1]
    created = np.datetime64(as_of.date(), "D") - age
    closed = d["days_to_close"] <= age
    outcome = _take(("lost", "won", "open"), np.where(closed, d["won"], 2).astype(np.int8))
    closed_at = np.where(closed, created + d["days_to_close"], np.datetime64("NaT"))
    deal_ids, acc_ids = _ids("D", n), _ids("A", len(acc["region"]))
    a = d["account"]
    deals = pd.DataFrame({
        "deal_id": deal_ids, "created_at": created.astype("datetime64[ns]"),
        "closed_at": closed_at.astype("datetime64[ns]"), "outcome": outcome, "amount": d["amount"],
        "owner": _take(OWNERS, d["owner"]), "account_id": acc_ids[a],
        "persona": _take(PERSONAS, d["persona"]), "channel": _take(CHANNELS, d["channel"]),
        "region": _take(REGIONS, acc["region"][a]), "industry": _take(INDUSTRIES, acc["industry"][a]),
        "product": _take(PRODUCTS, d["product"]),
        "loss_reason": _take(LOSS_REASONS, np.where(closed & ~d["won"], d["loss_reason"], -1)),
        "win_reason": _take(WIN_REASONS, np.where(closed & d["won"], d["win_reason"], -1)),
    }, copy=False)
    pd_, ps, pday = d["path_deal"], d["path_stage"], d["path_day"]
    seen = pday <= age[pd_]
    history = pd.DataFrame({
        "deal_id": deal_ids[pd_[seen]], "stage": _take(STAGES + WON_STAGES + LOST_STAGES, ps[seen]),
        "entered_at": (created[pd_[seen]] + pday[seen]).astype("datetime64[ns]"),
    }, copy=False)
    accounts = pd.DataFrame({
        "account_id": acc_ids, "industry": _take(INDUSTRIES, acc["industry"]),
        "employees": acc["employees"], "revenue": acc["revenue"], "region": _take(REGIONS, acc["region"]),
    }, copy=False)
    contact_ids = _ids("C", len(con["deal"]))
    contacts = pd.DataFrame({
        "contact_id": contact_ids, "account_id": acc_ids[a[con["deal"]]], "deal_id": deal_ids[con["deal"]],
        "role": _take(ROLES, con["role"]), "persona": _take(PERSONAS, con["persona"]),
    }, copy=False)
    # Touchpoints: a Poisson number per visit of an open stage, on days within the visit.
    visit = np.flatnonzero(ps < _K)
    visit = visit[pday[visit] <= age[pd_[visit]]]
    row = np.repeat(visit, rng.poisson(TOUCHES_PER_VISIT[ps[visit]]))
    deal = pd_[row]
    on = pday[row] + np.floor(rng.random(len(row)) * (pday[row + 1] - pday[row])).astype(np.int64)
    keep = on <= age[deal]
    row, deal, on = row[keep], deal[keep], on[keep]
    order = np.argsort(row.astype(np.int64) * 4096 + (on - pday[row]), kind="stable")
    row, deal, on = row[order], deal[order], on[order]
    contact = con["start"][deal] + np.floor(rng.random(len(deal)) * con["count"][deal]).astype(np.int64)
    kind = _choose_by(rng, ps[row], TOUCH_WEIGHTS)
    touchpoints = pd.DataFrame({
        "deal_id": deal_ids[deal], "account_id": acc_ids[a[deal]], "contact_id": contact_ids[contact],
        "occurred_at": (created[deal] + on).astype("datetime64[ns]"),
        "channel": _take([c for c, _ in TOUCH_KINDS], kind), "kind": _take([k for _, k in TOUCH_KINDS], kind),
    }, copy=False)
    return {"deals": deals, "stage_history": history, "accounts": accounts,
            "contacts": contacts, "touchpoints": touchpoints}


@dataclass(frozen=True, repr=False)
class SampleData:
    """Sample CRM tables cut at ``as_of``, with the true statistics of the process.

    Attributes
    ----------
    deals, stage_history, accounts, contacts, touchpoints : DataFrame
        The canonical tables (see `workbench.dataset.model`).
    as_of : Timestamp
        The cut-off.
    truth : Truth
        Statistics of a large, separate, uncut simulation of the same process.
    seed : str
        The seed the data was generated from.
    """

    deals: pd.DataFrame
    stage_history: pd.DataFrame
    accounts: pd.DataFrame
    contacts: pd.DataFrame
    touchpoints: pd.DataFrame
    as_of: pd.Timestamp
    truth: Truth
    seed: str
    _journeys: Journeys

    stages = STAGES
    won_stages = WON_STAGES
    lost_stages = LOST_STAGES

    @cached_property
    def sample_truth(self) -> Truth:
        """The same statistics on these deals' own full journeys (what happens after ``as_of`` too)."""
        return Truth(self._journeys, STAGES, COEFFICIENTS)

    def frames(self) -> dict[str, pd.DataFrame]:
        """The five tables by canonical name."""
        return {t: getattr(self, t) for t in ("deals", "stage_history", "accounts", "contacts", "touchpoints")}

    def dataset(self):
        """The data as a validated `workbench.dataset.model.Dataset` (through `workbench.dataset.loader.from_frames`)."""
        from .loader import from_frames

        return from_frames(**self.frames(), stages=self.stages, won_stages=self.won_stages,
                           lost_stages=self.lost_stages, as_of=self.as_of, name="sample")

    def write_csv(self, folder) -> Path:
        """Write the tables as CSV (ISO dates) and a `dataset.yaml` mapping them; return its path."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for table, frame in self.frames().items():
            frame.to_csv(folder / f"{table}.csv", index=False, date_format="%Y-%m-%d")
        name = f'Sample CRM (workbench.dataset.sample, seed "{self.seed}")'
        if yaml.safe_load(f"name: {name}") != {"name": name}:
            name = json.dumps(name)  # a seed YAML would misread: quote it (JSON strings are YAML)
        lines = [f"name: {name}", f'as_of: "{self.as_of.date().isoformat()}"', "dates: iso",
                 f"stages: [{', '.join(self.stages)}]", f"won_stages: [{', '.join(self.won_stages)}]",
                 f"lost_stages: [{', '.join(self.lost_stages)}]"]
        for table in self.frames():
            lines += [f"{table}:", f"  source: {table}.csv"]
        path = folder / "dataset.yaml"
        path.write_text("\n".join(lines) + "\n")
        return path

    def __repr__(self) -> str:
        counts = self.deals["outcome"].value_counts()
        return (f"<SampleData seed={self.seed!r}: {len(self.deals)} deals ({counts.get('won', 0)} won, "
                f"{counts.get('lost', 0)} lost, {counts.get('open', 0)} open) as of {self.as_of.date()}>")


def generate(n_deals: int = 20_000, seed: str = "workbench", as_of="2025-06-30",
             truth_deals: int = 200_000) -> SampleData:
    """Generate sample CRM data and its ground truth.

    Parameters
    ----------
    n_deals : int
        Number of deals, created over the two years before ``as_of``.
    seed : str
        Every random draw derives from this string; the same seed gives the same data.
    as_of : str or Timestamp
        The cut-off: later stage entries and touchpoints are not in the data.
    truth_deals : int
        Size of the separate, uncut simulation the truth is computed from.

    Returns
    -------
    SampleData

    Examples
    --------
    >>> s = generate(n_deals=2_000, truth_deals=20_000)
    >>> sorted(s.deals["outcome"].unique())
    ['lost', 'open', 'won']
    """
    for label, value in (("n_deals", n_deals), ("truth_deals", truth_deals)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise WorkbenchError(f"`{label}` must be a positive integer, got {value!r}. "
                                 + fixes(f"pass e.g. {label}=20_000"))
    as_of = pd.Timestamp(as_of).normalize()
    pop = _population(_rng(seed, "deals"), int(n_deals))
    tables = _observe(pop, _rng(seed, "observe"), as_of)
    truth = Truth(_full_journeys(_population(_rng(seed, "truth"), int(truth_deals))), STAGES, COEFFICIENTS)
    return SampleData(**tables, as_of=as_of, truth=truth, seed=seed, _journeys=_full_journeys(pop))
