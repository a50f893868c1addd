"""Small CRM exports of the shapes real data come in, each written as files with its dataset.yaml.

The bundled sample is one shape among many; these are the others the end-to-end tests run
`workbench run` on (tests/test_shapes.py): an opportunities export without stage history or
reasons, a stage history without reasons, a drivers-only table without dates, a process log
with loops, same-time events and durations of hours, and data where one level never wins in
one segment. Each function writes into ``folder`` and returns the dataset.yaml path.
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from workbench.dataset.sample import generate
from workbench.seeds import seeded_rng


def _sample(n_deals: int, seed: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return generate(n_deals=n_deals, seed=seed, truth_deals=1_000)


def _write(folder: Path, yaml_text: str, **frames: pd.DataFrame) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in frames.items():
        frame.to_csv(folder / f"{name}.csv", index=False)
    path = folder / "dataset.yaml"
    path.write_text(yaml_text)
    return path


def opportunities_without_history(folder: Path, n_deals: int = 500) -> Path:
    """The most common CRM export: one row per opportunity with its stage name, dates, amount, owner,
    product and account, as Salesforce names them; no stage history, no loss reasons."""
    deals = _sample(n_deals, "shape-opportunities").deals
    stage = deals["outcome"].map({"won": "Closed Won", "lost": "Closed Lost", "open": "Prospecting"})
    export = pd.DataFrame({
        "Id": deals["deal_id"], "CreatedDate": deals["created_at"].dt.strftime("%Y-%m-%d"),
        "CloseDate": deals["closed_at"].dt.strftime("%Y-%m-%d"), "StageName": stage, "Amount": deals["amount"],
        "OwnerId": deals["owner"], "Product2": deals["product"], "AccountId": deals["account_id"],
        "Industry": deals["industry"], "LeadSource": deals["channel"],
    })
    return _write(folder, """\
name: Opportunities export
dates: iso
deals:
  source: opportunities.csv
  columns:
    deal_id: Id
    created_at: CreatedDate
    closed_at: CloseDate
    outcome: StageName
    amount: Amount
    owner: OwnerId
    account_id: AccountId
    product: Product2
    industry: Industry
    channel: LeadSource
  values:
    outcome: {"Closed Won": won, "Closed Lost": lost, "*": open}
  keep_other_columns: false
""", opportunities=export)


def history_without_reasons(folder: Path, n_deals: int = 500) -> Path:
    """Deals with a stage history but no loss or win reasons, and no accounts, contacts or touchpoints."""
    sample = _sample(n_deals, "shape-no-reasons")
    deals = sample.deals.drop(columns=["loss_reason", "win_reason"])
    return _write(folder, f"""\
name: Stage history without reasons
as_of: "{sample.as_of.date()}"
dates: iso
stages: [{', '.join(sample.stages)}]
won_stages: [{', '.join(sample.won_stages)}]
lost_stages: [{', '.join(sample.lost_stages)}]
deals: {{source: deals.csv}}
stage_history: {{source: stage_history.csv}}
""", deals=deals, stage_history=sample.stage_history)


def drivers_only(folder: Path, n_deals: int = 500) -> Path:
    """A win/loss table without any date: outcome, amount and attributes only."""
    deals = _sample(n_deals, "shape-drivers").deals
    deals = deals[deals["outcome"] != "open"]
    table = pd.DataFrame({"Opportunity": deals["deal_id"], "Result": deals["outcome"].str.title(),
                          "Value": deals["amount"], "Region": deals["region"], "Product": deals["product"],
                          "Source": deals["channel"], "Loss reason": deals["loss_reason"]})
    return _write(folder, """\
name: Win/loss table without dates
deals:
  source: winloss.csv
  columns:
    deal_id: Opportunity
    outcome: Result
    amount: Value
    region: Region
    product: Product
    channel: Source
    loss_reason: Loss reason
  values:
    outcome: {Won: won, Lost: lost}
""", winloss=table)


def process_log(folder: Path, n_cases: int = 400) -> Path:
    """A process log of loan applications: events with loops (a case goes back to an earlier step),
    several events at the same timestamp, cases that take hours, and many still open at the end."""
    rng = seeded_rng("shape-process-log")
    steps = ["Submitted", "Checked", "Offered"]
    rows, cases = [], []
    start = pd.Timestamp("2024-03-01 08:00")
    end = start + pd.Timedelta(days=30)
    goals = np.array(["Car", "Home", "Business", "Education"])
    for case in range(n_cases):
        goal = goals[rng.integers(len(goals))]
        t = start + pd.Timedelta(hours=float(rng.uniform(0, 30 * 24 - 1)))
        case_id = f"Application_{case:05d}"
        cases.append({"case": case_id, "goal": goal, "channel": ["Online", "Branch"][int(rng.integers(2))]})
        step = 0
        rows.append((case_id, steps[0], t))
        while True:
            t = t + pd.Timedelta(hours=float(rng.exponential(3.0)))
            if t > end:
                break
            draw = rng.uniform()
            if step > 0 and draw < 0.15:  # a loop back to the previous step
                step -= 1
                rows.append((case_id, steps[step], t))
                continue
            if step < len(steps) - 1:
                step += 1
                rows.append((case_id, steps[step], t))
                if draw < 0.1:  # the next step logged at the same moment
                    step = min(step + 1, len(steps) - 1)
                    rows.append((case_id, steps[step], t))
                continue
            # Education loans are never accepted.
            accept = goal != "Education" and draw < 0.55
            rows.append((case_id, "Accepted" if accept else "Cancelled", t))
            break
    log = pd.DataFrame(rows, columns=["case_id", "activity", "timestamp"])
    log["timestamp"] = log["timestamp"].dt.strftime("%Y-%m-%d %H:%M:%S")
    created = log.groupby("case_id")["timestamp"].min().rename("created")
    applications = pd.DataFrame(cases).merge(created, left_on="case", right_index=True)
    return _write(folder, f"""\
name: Loan applications (process log)
as_of: "{end.strftime('%Y-%m-%d %H:%M:%S')}"
dates: iso
stages: [{', '.join(steps)}]
won_stages: [Accepted]
lost_stages: [Cancelled]
deals:
  source: applications.csv
  columns: {{deal_id: case, created_at: created, loan_goal: goal, channel: channel}}
  keep_other_columns: false
  derive: {{outcome: final_stage, closed_at: final_stage}}
stage_history:
  source: events.csv
  columns: {{deal_id: case_id, stage: activity, entered_at: timestamp}}
""", applications=applications, events=log)


def level_without_wins(folder: Path, n_deals: int = 1_500) -> Path:
    """The sample with every Partner deal in EMEA lost: in the EMEA segment one channel never wins."""
    sample = _sample(n_deals, "shape-no-wins")
    deals = sample.deals.copy()
    doomed = deals["region"].eq("EMEA") & deals["channel"].eq("Partner") & deals["outcome"].eq("won")
    deals.loc[doomed, "outcome"] = "lost"
    deals.loc[doomed, "loss_reason"] = "Price"
    deals.loc[doomed, "win_reason"] = None
    history = sample.stage_history
    won_rows = history["deal_id"].isin(deals.loc[doomed, "deal_id"]) & history["stage"].isin(sample.won_stages)
    history = history.assign(stage=history["stage"].where(~won_rows, sample.lost_stages[0]))
    frames = {**sample.frames(), "deals": deals, "stage_history": history}
    lines = ['name: One level without wins', f'as_of: "{sample.as_of.date()}"', "dates: iso",
             f"stages: [{', '.join(sample.stages)}]", f"won_stages: [{', '.join(sample.won_stages)}]",
             f"lost_stages: [{', '.join(sample.lost_stages)}]"]
    lines += [f"{name}: {{source: {name}.csv}}" for name in frames]
    return _write(folder, "\n".join(lines) + "\n", **frames)


def full_sample(folder: Path, n_deals: int = 900) -> Path:
    """The bundled sample's shape, small: every table, personas, reasons."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _sample(n_deals, "shape-sample").write_csv(folder)


#: Text a CRM user can type that a careless report would run or a spreadsheet would compute.
HOSTILE = ['<img src=x onerror="window.__hit=(window.__hit||0)+1">',
           '"><svg onload="window.__hit=(window.__hit||0)+1">',
           '[click](javascript:window.__hit=1)',
           '=HYPERLINK("http://x.invalid","y")',
           "=cmd|' /C calc'!A0",
           "@SUM(1+1)",
           "{{ 7*7 }} {% if 1 %}x{% endif %}",
           "$\\frac{1}{2}$ **bold** `code` | pipe"]


def hostile(folder: Path, n_deals: int = 600) -> Path:
    """The sample with hostile text in every text column and label: personas, channels, regions, industries,
    products, reasons, owners, stages, contact roles, touchpoint channels and kinds."""
    sample = _sample(n_deals, "shape-hostile")
    frames = {name: frame.copy() for name, frame in sample.frames().items()}

    def spoil(frame, column):
        levels = sorted(frame[column].dropna().unique())
        mapping = {v: f"{HOSTILE[i % len(HOSTILE)]} {v}" if i >= len(HOSTILE) else HOSTILE[i]
                   for i, v in enumerate(levels)}
        frame[column] = frame[column].map(mapping)

    for column in ("persona", "channel", "region", "industry", "product", "loss_reason", "win_reason", "owner"):
        spoil(frames["deals"], column)
    spoil(frames["accounts"], "industry")
    spoil(frames["contacts"], "role")
    spoil(frames["touchpoints"], "channel")
    spoil(frames["touchpoints"], "kind")
    stages = {s: f"{s} {HOSTILE[i % len(HOSTILE)]}" for i, s in enumerate(sample.stages)}
    frames["stage_history"]["stage"] = frames["stage_history"]["stage"].replace(stages)
    quoted = lambda names: "[" + ", ".join(json.dumps(n) for n in names) + "]"  # noqa: E731 - JSON strings are YAML
    lines = [f"name: {json.dumps(HOSTILE[0])}", f'as_of: "{sample.as_of.date()}"', "dates: iso",
             f"stages: {quoted(stages.values())}", f"won_stages: {quoted(sample.won_stages)}",
             f"lost_stages: {quoted(sample.lost_stages)}"]
    lines += [f"{name}: {{source: {name}.csv}}" for name in frames]
    return _write(folder, "\n".join(lines) + "\n", **frames)
