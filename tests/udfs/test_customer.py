"""One customer's life in the job: scores, delayed labels, and test-then-train."""

from __future__ import annotations

import pickle
import random
from array import array

import pytest

from tests.helpers import event, interaction, offline_model, order
from udfs.customer import (
    LEGACY_FEATURE_SET,
    MAX_SEEN_CHANGES,
    STATE_FORMAT,
    Applied,
    CustomerLogic,
    CustomerState,
    ScoringParams,
    _seen_before,
    change_digest,
    change_key,
    decode_state,
    encode_state,
    reapply,
)
from udfs.features import FEATURE_NAMES, FEATURE_SET, Product
from udfs.online import logit, sigmoid

HORIZON = 60_000
SHOE = Product(1, "shoes", "red", 80.0)
BAG = Product(2, "bags", "black", 120.0)


@pytest.fixture
def logic() -> CustomerLogic:
    return CustomerLogic(offline_model(), ScoringParams(label_horizon_ms=HORIZON, history_len=5))


def test_interaction_is_scored_once_with_a_timer_at_the_horizon(logic, score_validator):
    s = CustomerState()
    out = logic.on_interaction(s, interaction(1, 1_000), SHOE, now_ms=2_000)
    assert len(out.records) == 1 and out.timers == [1_000 + HORIZON] and out.learned == 0
    rec = out.records[0]
    score_validator.validate(rec)
    assert rec["p_online"] == rec["p_offline"]  # a new customer starts at the offline model
    assert rec["online_updates"] == 0 and rec["cold_start"] and rec["history_len"] == 0
    assert len(s.pending) == 1


def test_order_within_horizon_is_a_positive_and_is_learned_after_scoring(logic):
    s = CustomerState()
    scored = logic.on_interaction(s, interaction(1, 1_000), SHOE).records[0]
    assert s.online.n_updates == 0  # test first ...
    out = logic.on_order(s, order(9, 1_000 + HORIZON - 1), SHOE)
    assert out.learned == 1 and s.positives == 1 and not s.pending  # ... then train
    later = logic.on_interaction(s, interaction(2, 70_000), SHOE).records[0]
    assert later["online_updates"] == 1
    assert later["p_online"] != later["p_offline"]
    assert scored["online_updates"] == 0


def test_horizon_passing_without_order_is_a_negative(logic):
    s = CustomerState()
    logic.on_interaction(s, interaction(1, 1_000), SHOE)
    logic.on_interaction(s, interaction(2, 30_000), BAG)
    assert logic.on_timer(s, 1_000 + HORIZON).learned == 1  # only the first is due
    assert s.negatives == 1 and len(s.pending) == 1
    assert logic.on_timer(s, 30_000 + HORIZON).learned == 1 and not s.pending


def test_order_after_horizon_or_for_other_product_is_not_a_positive(logic):
    s = CustomerState()
    logic.on_interaction(s, interaction(1, 1_000), SHOE)
    assert logic.on_order(s, order(9, 5_000, product_id=2), BAG).learned == 0
    assert logic.on_order(s, order(10, 1_000 + HORIZON + 1), SHOE).learned == 0
    assert logic.on_timer(s, 1_000 + HORIZON).learned == 1 and s.negatives == 1


def test_order_arriving_before_its_interaction_still_resolves_positive(logic):
    """CDC topics are read independently: the order may overtake the interaction."""
    s = CustomerState()
    logic.on_order(s, order(9, 20_000), SHOE)
    out = logic.on_interaction(s, interaction(1, 10_000), SHOE)
    assert out.records[0]["online_updates"] == 0  # scored before it learned from it
    assert out.learned == 1 and s.positives == 1 and out.timers == [] and not s.pending


def test_deleted_interaction_is_never_learned(logic):
    s = CustomerState()
    logic.on_interaction(s, interaction(1, 1_000), SHOE)
    assert logic.on_interaction(s, interaction(1, 1_000, op="d"), SHOE).records == []
    assert logic.on_timer(s, 10 * HORIZON).learned == 0 and s.online.n_updates == 0


def test_updates_do_not_rescore_and_order_updates_do_not_relearn(logic):
    s = CustomerState()
    logic.on_interaction(s, interaction(1, 1_000), SHOE)
    assert logic.on_interaction(s, interaction(1, 1_000, op="u"), SHOE).records == []
    logic.on_order(s, order(9, 2_000), SHOE)
    assert logic.on_order(s, order(9, 2_000, op="u"), SHOE).learned == 0
    assert s.online.n_updates == 1 and s.profile.n_orders == 1


def test_customer_delete_clears_state(logic):
    from tests.helpers import event

    out = logic.on_customer(CustomerState(), event("customers", "d", 7, 0, segment="budget"))
    assert out.clear_state


def test_inactive_customers_expire_by_event_time_after_their_last_labels():
    hour, ttl = 3_600_000, 86_400_000
    logic = CustomerLogic(offline_model(), ScoringParams(label_horizon_ms=HORIZON, history_len=5,
                                                         inactivity_ttl_ms=ttl))
    s = CustomerState()
    first = logic.on_event(s, interaction(1, 1_000), SHOE)
    assert first.timers == [1_000 + HORIZON, ttl + hour]  # the horizon, the hour after the TTL
    assert logic.on_event(s, interaction(2, 2_000), SHOE).timers == [2_000 + HORIZON]  # same hour
    later = logic.on_event(s, interaction(3, 2 * hour), SHOE)
    assert later.timers == [2 * hour + HORIZON, 2 * hour + ttl]
    stale = logic.on_timer(s, ttl + hour)  # an old expiry timer: the customer was active since
    assert not stale.clear_state and stale.learned == 3  # (labels due by then are still learned)
    assert logic.on_timer(s, 2 * hour + ttl).clear_state

    once = CustomerState()
    due = logic.on_event(once, interaction(4, 5_000), SHOE).timers[-1]
    gone = logic.on_timer(once, due)  # its label is due too: learned and logged, then forgotten
    assert gone.clear_state and gone.learned == 1 and len(gone.labels) == 1


@pytest.mark.parametrize("save, restore", [(encode_state, decode_state),  # what the job stores
                                            (pickle.dumps, decode_state),  # state from before format 1
                                            (pickle.dumps, pickle.loads)])
def test_state_survives_storing_mid_stream(logic, save, restore):
    s = CustomerState()
    logic.on_interaction(s, interaction(1, 1_000), SHOE)
    s2 = restore(save(s))
    logic.on_order(s, order(9, 2_000), SHOE)
    logic.on_order(s2, order(9, 2_000), SHOE)
    assert s2.online.w.tolist() == s.online.w.tolist() and s2.positives == 1


# A customer's state as session 21's job wrote it (format 2, history kept as (ts, product, kind)
# tuples then): a click and an order of product 7, then a view of an unknown product.
STORED_BY_SESSION_21 = bytes.fromhex(
    "8005953e01000000000000284b024b024b014740540000000000004db80b4dd0077d948c0573686f657394474023ffff"
    "d98b476f737d948c0372656494474023ffffd98b476f737d944b03474023ffffd98b476f73474023ffffd98b476f4318"
    "e803000000000000d007000000000000b80b00000000000094431807000000000000000700000000000000ffffffffff"
    "ffffff944303010300944378000000000000000000000000000000000000000000000000000000000000000000000000"
    "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
    "000000000000000000000000000000000000000000000000000000000000000000000000944700000000000000004b00"
    "4e4740300000000000005d94430094680a4b008c0663617375616c944b004b004b004b004b0074942e")


def test_state_written_before_history_columns_restores_unchanged():
    restored = decode_state(STORED_BY_SESSION_21)
    assert restored.profile.history == [(1000, 7, "click"), (2000, 7, "order"), (3000, -1, "view")]
    assert restored.segment == "casual" and restored.profile.n_orders == 1
    old, new = pickle.loads(STORED_BY_SESSION_21), pickle.loads(encode_state(restored))
    # every field as it was (this customer had learned nothing), plus the feature set now
    assert new[1:-1] == old[1:] and (new[0], new[-1]) == (STATE_FORMAT, FEATURE_SET)


def _learned(logic: CustomerLogic) -> CustomerState:
    """A customer whose residual learned from a positive and who has a label pending."""
    s = CustomerState()
    logic.on_interaction(s, interaction(1, 1_000), SHOE)
    logic.on_order(s, order(9, 2_000), SHOE)
    logic.on_interaction(s, interaction(2, 3_000), SHOE)
    assert s.online.n_updates == 1 and s.online.w.any() and len(s.pending) == 1
    return s


@pytest.mark.parametrize("feature_set", [LEGACY_FEATURE_SET, FEATURE_SET + 1])
def test_weights_learned_on_another_feature_set_are_not_applied(logic, feature_set):
    """A state from before the log shares (format 2), or written for another feature list:
    the residual starts again at the offline model; the rest of the customer stays."""
    s = _learned(logic)
    t = list(pickle.loads(encode_state(s)))
    if feature_set == LEGACY_FEATURE_SET:
        t = [2, *t[1:-1]]  # format 2 had no feature set: the plain shares'
    else:
        t[-1] = feature_set
    restored = decode_state(pickle.dumps(tuple(t)))
    assert restored.online.n_updates == 0 and not restored.online.w.any() and restored.online.b == 0.0
    assert restored.profile.history == s.profile.history and restored.positives == 1
    assert [p.x for p in restored.pending] == [p.x for p in s.pending]
    assert pickle.loads(encode_state(restored))[-1] == FEATURE_SET
    # whole pickled objects (before format 1) were learned on the plain shares too
    assert decode_state(pickle.dumps(s)).online.n_updates == 0


def test_a_state_pickled_whole_before_later_fields_existed_restores_and_learns(logic):
    """States before format 1 were the objects pickled whole, and pickle restores only the slots
    it stored: a pending label from then has none of the fields added since (``packed``,
    ``scaled``, ``scaled_by``). It must still be learned from and written back."""
    s = _learned(logic)
    for p in s.pending:
        del p.packed, p.scaled, p.scaled_by
    restored = decode_state(pickle.dumps(s))
    out = logic.on_timer(restored, 3_000 + HORIZON)
    assert out.learned == 1 and out.labels[0]["interaction_id"] == 2
    assert decode_state(encode_state(restored)).negatives == 1


def test_weights_learned_on_these_features_are_kept(logic):
    s = _learned(logic)
    restored = decode_state(encode_state(s))
    assert restored.online.w.tolist() == s.online.w.tolist() and restored.online.n_updates == 1


def test_a_customer_stored_and_restored_after_every_event_behaves_identically(logic):
    """The job decodes and encodes the state around every event: over a random life of
    interactions, orders, updates, deletes, timers and a segment change, every output must equal
    that of a customer kept in memory, and every encoding must round-trip."""
    rng = random.Random(3)
    kept, stored = CustomerState(), encode_state(CustomerState())
    t = 0
    for i in range(400):
        t += rng.randrange(1_000, 90_000)
        kind = rng.random()
        if kind < 0.6:
            ev = interaction(i, t, product_id=rng.randrange(1, 4), kind=rng.choice(["view", "click", "add_to_cart"]))
        elif kind < 0.65:
            ev = interaction(rng.randrange(max(i, 1)), t, op=rng.choice(["u", "d"]))
        elif kind < 0.8:
            ev = order(10_000 + i, t, product_id=rng.randrange(1, 4), amount=rng.uniform(1, 300))
        elif kind < 0.85:
            ev = event("customers", "u", 7, t, 7, segment=rng.choice(["casual", "loyal"]))
        else:
            ev = None
        if i % 40 == 0:  # the shared correction of each segment moves now and then
            logic.drift = {"casual": rng.uniform(-1, 1), "loyal": rng.uniform(-1, 1)}
        restored = decode_state(stored)
        if ev is None:
            a, b = logic.on_timer(kept, t), logic.on_timer(restored, t)
        else:
            product = rng.choice([SHOE, BAG, None])
            a = logic.on_event(kept, ev, product, now_ms=t, watermark_ms=t - 5_000)
            b = logic.on_event(restored, ev, product, now_ms=t, watermark_ms=t - 5_000)
        assert (a.records, a.labels, a.timers, a.learned) == (b.records, b.labels, b.timers, b.learned)
        stored = encode_state(restored)
        # (compared decoded: equal strings may be shared or not, which changes pickle's bytes)
        assert pickle.loads(encode_state(kept)) == pickle.loads(stored)
        assert pickle.loads(encode_state(decode_state(stored))) == pickle.loads(stored)
    assert kept.positives > 0 and kept.negatives > 0 and kept.online.n_updates > 20


def test_a_label_resolved_after_a_model_swap_learns_on_the_new_models_scale(logic):
    """A pending label keeps its features as scaled at scoring (PendingLabel.scaled) so that
    learning need not scale them again; after a swap to a model with another scaler it must not
    use them: the residual learns on the serving model's scale, as it does for a label restored
    from Flink state (which holds no scaled copy)."""
    from tests.helpers import fitted_pipeline
    from udfs.scoring import OfflineModel

    kept = CustomerState()
    for i, t in enumerate((1_000, 20_000, 40_000)):
        logic.on_event(kept, interaction(i, t, kind="click"), SHOE, watermark_ms=0)
    assert all(p.scaled is not None for p in kept.pending)
    restored = decode_state(encode_state(kept))
    assert all(p.scaled is None for p in restored.pending)
    logic.model = OfflineModel(fitted_pipeline(seed=1), {"name": "propensity", "version": 2,
                                                         "features": list(FEATURE_NAMES)})
    a, b = logic.on_timer(kept, 40_000 + HORIZON), logic.on_timer(restored, 40_000 + HORIZON)
    assert a.learned == b.learned == 3
    assert a.labels == b.labels
    assert pickle.loads(encode_state(kept)) == pickle.loads(encode_state(restored))


def test_snapshot_order_all_orders_first_still_resolves_every_positive(logic):
    """A snapshot may deliver all of a customer's orders before any of their interactions."""
    s = CustomerState()
    for i, t in enumerate((10_000, 5_000_000, 9_000_000)):
        logic.on_event(s, order(90 + i, t), SHOE, watermark_ms=0)
    for i, t in enumerate((1_000, 4_990_000, 8_995_000)):
        out = logic.on_event(s, interaction(i + 1, t), SHOE, watermark_ms=0)
        assert out.learned == 1
    assert s.positives == 3 and not s.pending


def test_orders_are_forgotten_once_the_watermark_passes_them(logic):
    s = CustomerState()
    logic.on_event(s, order(9, 10_000), SHOE, watermark_ms=0)
    logic.on_event(s, interaction(1, 20_000, product_id=2), BAG, watermark_ms=10_001)
    assert s.recent_orders == []


def test_resent_changes_are_applied_once(logic):
    """Debezium re-sends a batch after a crash; a re-snapshot re-reads rows seen live."""
    s = CustomerState()
    first = logic.on_event(s, interaction(1, 1_000), SHOE)
    assert len(first.records) == 1
    assert logic.on_event(s, interaction(1, 1_000), SHOE).duplicate
    assert logic.on_event(s, interaction(1, 1_000, op="r"), SHOE).duplicate  # re-snapshot
    assert logic.on_event(s, order(9, 2_000), SHOE).learned == 1
    again = logic.on_event(s, order(9, 2_000), SHOE)
    assert again.duplicate and again.learned == 0
    assert s.online.n_updates == 1 and s.profile.n_orders == 1 and s.duplicates == 3


def test_the_last_changes_are_remembered_up_to_the_cap(logic):
    s = CustomerState()
    for i in range(MAX_SEEN_CHANGES + 1):
        logic.on_event(s, interaction(i + 1, 1_000 + i), SHOE)
    assert len(s.seen) == 8 * MAX_SEEN_CHANGES
    assert logic.on_event(s, interaction(2, 1_001), SHOE).duplicate  # still remembered
    assert not logic.on_event(s, interaction(1, 1_000), SHOE).duplicate  # the oldest, forgotten


def test_a_match_across_two_keys_bytes_is_no_key():
    a, b = change_digest(interaction(1, 0)), change_digest(interaction(2, 0))
    assert _seen_before(bytearray(a + b), b) and _seen_before(bytearray(a + b), a)
    assert not _seen_before(bytearray(a + b), a[3:] + b[:3])
    assert not _seen_before(bytearray(a + b), change_digest(interaction(3, 0)))


@pytest.mark.parametrize("stored_as", ["array", "dict"])
def test_a_state_pickled_whole_still_recognises_its_changes(logic, stored_as):
    """States pickled whole (before format 1) kept the de-duplication keys as an array of
    change_key values, and before that as a dict of the changes' identities."""
    s = CustomerState()
    changes = [interaction(1, 1_000), order(9, 2_000), interaction(2, 3_000, op="r")]
    for ev in changes:
        logic.on_event(s, ev, SHOE)
    if stored_as == "array":
        s.seen = array("q", [change_key(ev) for ev in changes])  # type: ignore[assignment]
    else:
        s.seen = {f"{ev.table}:{ev.row['id']}": None for ev in changes}  # type: ignore[assignment]
    restored = decode_state(pickle.dumps(s))
    assert all(logic.on_event(restored, ev, SHOE).duplicate for ev in changes)
    # and it is written back as states of this format store it: array("q")'s bytes
    assert array("q", [change_key(ev) for ev in changes]).tobytes() in pickle.loads(encode_state(restored))


def test_every_learned_label_is_logged_with_its_features(logic):
    s = CustomerState()
    logic.on_event(s, interaction(1, 1_000), SHOE)
    logic.on_event(s, interaction(2, 2_000, product_id=2), BAG)
    pos = logic.on_event(s, order(9, 3_000), SHOE).labels
    neg = logic.on_timer(s, 2_000 + HORIZON).labels
    assert [(r["interaction_id"], r["label"], r["online_updates"]) for r in pos + neg] == [(1, 1, 1), (2, 0, 2)]
    assert len(pos[0]["features"]) == len(FEATURE_NAMES) and pos[0]["customer_id"] == 7


def test_state_per_customer_stays_bounded(logic):
    """History, pending labels, recent orders and the de-dup window are all bounded."""
    s = CustomerState()
    sizes = {}
    for i in range(3000):
        t = (i + 1) * 600_000
        logic.on_event(s, interaction(i, t, product_id=i % 40), SHOE, watermark_ms=t - 2_000)
        if i % 10 == 0:
            logic.on_event(s, order(10**6 + i, t + 5_000, product_id=i % 40), SHOE, watermark_ms=t)
        logic.on_timer(s, t - HORIZON)
        if i + 1 in (10, 300, 3000):
            sizes[i + 1] = len(encode_state(s))
    # Full windows (history, 128 de-dup hashes): within issue 6's 2 KB per customer.
    assert sizes[3000] <= 2_048 and sizes[3000] - sizes[300] < 200, sizes


def test_cold_start_customers_get_the_cold_start_model_when_training_chose_it(score_validator):
    from tests.helpers import cold_model

    params = ScoringParams(label_horizon_ms=HORIZON, history_len=5)
    chosen = CustomerLogic(offline_model(), params, cold_model=cold_model(serve=True))
    s = CustomerState()
    selected = []
    for i in range(5):
        rec = chosen.on_interaction(s, interaction(i + 1, 1_000 + i), SHOE).records[0]
        score_validator.validate(rec)
        selected.append((rec["selected"], rec["model"]["name"]))
    # Fewer than 3 interactions before this one: cold start; then the personalised model.
    assert selected == [("cold_start", "propensity_cold")] * 3 + [("personalised", "propensity")] * 2
    # A cold-start model that did not beat the personalised one at training is not served.
    declined = CustomerLogic(offline_model(), params, cold_model=cold_model(serve=False))
    rec = declined.on_interaction(CustomerState(), interaction(1, 1_000), SHOE).records[0]
    assert (rec["selected"], rec["model"]["name"]) == ("personalised", "propensity")


def test_the_segment_correction_is_served_remembered_and_learned_on_top_of(logic):
    """A customer is scored at offline + their segment's shared correction; the label learns the
    personal residual against what was served then, even if the correction moved since."""
    s = CustomerState(segment="loyal")
    logic.drift = {"loyal": 0.8, "casual": -2.0}
    rec = logic.on_interaction(s, interaction(1, 1_000), SHOE).records[0]
    assert rec["drift_offset"] == 0.8
    assert rec["p_online"] == pytest.approx(sigmoid(logit(rec["p_offline"]) + 0.8), abs=1e-5)
    assert s.pending[0].shared_offset == 0.8
    logic.drift["loyal"] = 0.0
    label = logic.on_timer(s, 1_000 + HORIZON).labels[0]
    assert label["segment"] == "loyal" and label["drift_offset"] == 0.8 and label["label"] == 0
    # the residual took its step from the served probability (offline + 0.8), not the offline one
    assert label["p_online_before"] == pytest.approx(rec["p_online"], abs=1e-5)
    unknown = CustomerState()  # no customer row yet: the "unknown" segment's correction
    logic.drift["unknown"] = -0.3
    assert logic.on_interaction(unknown, interaction(2, 2_000), SHOE).records[0]["drift_offset"] == -0.3


def test_state_from_format_1_restores_with_no_shared_offset(logic):
    s = CustomerState()
    logic.on_interaction(s, interaction(1, 1_000), SHOE)
    t = list(pickle.loads(encode_state(s)))
    t[0] = 1
    pending_at = next(i for i, v in enumerate(t) if isinstance(v, list) and v and isinstance(v[0], tuple))
    t[pending_at] = [p[:-1] for p in t[pending_at]]  # format 1 pending labels had 9 fields
    restored = decode_state(pickle.dumps(tuple(t)))
    assert restored.pending[0].shared_offset == 0.0
    assert restored.pending[0].x == s.pending[0].x


def test_a_failed_change_is_rolled_back_to_the_state_after_the_last_good_one(logic):
    """What the job does when a change fails half-way: the state as last written, with the
    customer's changes and timers since then applied again (udfs.customer.reapply), each with
    the drift corrections and model it was applied with."""
    from udfs.state_cache import CustomerStateCache, MemoryStore

    cache = CustomerStateCache(MemoryStore(), capacity=10)
    before = [(interaction(1, 1_000), SHOE), (order(2, 2_000), SHOE)]
    for ev, product in before:  # earlier changes, written
        state = cache.get(7) or CustomerState()
        logic.on_event(state, ev, product, watermark_ms=0)
        cache.put(7, state)
    cache.flush()
    since = [(interaction(3, 3_000, product_id=2, kind="click"), BAG), (interaction(1, 1_000), SHOE),
             (None, 200_000), (event("customers", "d", 7, 3_500), None), (interaction(4, 4_000), SHOE),
             (None, 130_000), (order(5, 4_500), SHOE), (interaction(6, 5_000), SHOE)]
    def keep(state: CustomerState | None) -> None:
        if state is None:
            cache.remove(7)
        else:
            cache.put(7, state)

    applied: list[Applied] = []
    for i, (ev, product) in enumerate(since):
        logic.drift = {"unknown": 0.1 * i}  # a correction arrived between changes
        state = cache.get(7)
        if ev is None:  # the customer's label timer
            if state is None:
                continue
            out = logic.on_timer(state, product)
            applied.append(Applied(None, None, product, logic.drift, logic.model))
        else:
            state = state or CustomerState()
            out = logic.on_event(state, ev, product, watermark_ms=500)
            applied.append(Applied(ev, product, 500, logic.drift, logic.model))
        keep(None if out.clear_state else state)
        expected = None if out.clear_state else encode_state(state)  # after the last good change
        if state is not None:
            state.positives += 100  # the next change fails half-way
        logic.drift = {"unknown": -1.0}  # what is served now must not leak into the rebuild
        cache.forget(7)
        rebuilt = reapply(logic, cache.get(7), applied)
        assert logic.drift == {"unknown": -1.0}
        assert (None if rebuilt is None else encode_state(rebuilt)) == expected
        keep(rebuilt)
