"""States, incidents and baselines in the store, on SQLite and a real PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from monitor.judge.diagnose import Diagnosis, Layer, Verdict
from monitor.judge.incidents import Entry, IncidentChange, OpenIncident
from monitor.judge.state import Health, MonitorState, State
from monitor.judge.tracker import Baseline, StateRecord
from monitor.judge.trends import TrendSettings, update
from monitor.models import Cause
from monitor.store import SqlStore

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
DOWN = Diagnosis(
    Verdict.ORIGIN_FAULT,
    Cause.CONNECT_REFUSED,
    Layer.ORIGIN,
    "origin a fails (connection refused), so the edge fails too",
    "origin a: start it",
    ("edge: backend fetch failed [server: Varnish] after 0.00 s",),
)
UP = Diagnosis(Verdict.UP, Cause.OK, Layer.NONE, "every probe answered as expected", "")


def _down_at(time: datetime) -> StateRecord:
    state = MonitorState(State.DOWN, since=time, recent=(Health.DOWN,), last_seen=Health.DOWN)
    incident = OpenIncident(time, State.DOWN)
    entry = Entry(time, "opened", State.DOWN, "down", DOWN)
    return StateRecord("shop", time, state, IncidentChange(incident, (entry,), opens=True))


def _up_at(time: datetime, opened: datetime) -> StateRecord:
    state = MonitorState(State.UP, since=time, recent=(Health.UP,), last_seen=Health.UP)
    entries = (
        Entry(time, "changed", State.UP, "recovered", UP),
        Entry(time, "closed", State.UP, None, UP),
    )
    change = IncidentChange(OpenIncident(opened, State.DOWN), entries, closes=True)
    return StateRecord("shop", time, state, change)


async def test_an_incident_opens_is_restored_open_and_closes_with_its_duration(
    store: SqlStore,
) -> None:
    await store.write_states([_down_at(T0)])
    tracked = (await store.load_tracked())["shop"]
    assert tracked.state.state is State.DOWN
    assert tracked.state.restored
    assert tracked.incident == OpenIncident(T0, State.DOWN)
    await store.write_states([_up_at(T0 + timedelta(minutes=7), T0)])
    assert (await store.load_tracked())["shop"].incident is None
    [incident] = await store.fetch_incidents("shop")
    assert incident["duration_s"] == 420.0
    assert incident["verdict"] == "origin_fault"
    assert incident["cause"] == "connect_refused"
    assert incident["evidence"] == list(DOWN.evidence)
    assert [(e["seq"], e["kind"], e["event"]) for e in incident["events"]] == [
        (1, "opened", "down"),
        (2, "changed", "recovered"),
        (3, "closed", None),
    ]


async def test_a_retried_write_does_not_open_a_second_incident(store: SqlStore) -> None:
    record = _down_at(T0)
    await store.write_states([record])
    later = StateRecord(
        "shop",
        T0 + timedelta(minutes=1),
        record.state,
        IncidentChange(
            OpenIncident(T0, State.DOWN, flapping=True),
            (Entry(T0 + timedelta(minutes=1), "flapping", State.DOWN, "flapping", DOWN),),
        ),
    )
    await store.write_states([later])
    [incident] = await store.fetch_incidents("shop")
    assert incident["flapping"] is True
    assert [e["seq"] for e in incident["events"]] == [1, 2]


async def test_baselines_survive_a_restart(store: SqlStore) -> None:
    settings = TrendSettings()
    state = None
    for i in range(40):
        state, _ = update(state, 0.1 + 0.001 * (i % 3), T0 + timedelta(minutes=i), settings)
    assert state is not None
    key = ("origin", "a", "processing")
    await store.write_baselines([Baseline("shop", key, state)], T0)
    await store.write_baselines([Baseline("shop", key, state)], T0)  # an upsert, not a copy
    restored = (await store.load_tracked())["shop"].trends[key]
    assert restored == state
