"""`next_wave`: a batch written in waves applies as if its exports ran in message order."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from shared.core.waves import next_wave


def test_exports_sharing_a_key_go_in_successive_waves_and_the_rest_go_together() -> None:
    wave = next_wave([(0, {"o:a", "v:x"}), (1, {"o:b", "v:x"}), (2, {"o:c"}), (3, {"o:d", "v:x"})])
    assert (wave.together, wave.later, wave.alone) == ([0, 2], [1, 3], [])
    second = next_wave([(1, {"o:b", "v:x"}), (3, {"o:d", "v:x"})], wave.blocked)
    assert (second.together, second.later) == ([1], [3])


def test_whatever_touches_a_key_sent_alone_goes_alone_too_and_passes_the_block_on() -> None:
    wave = next_wave([(0, {"o:a", "v:x"}), (1, {"o:b", "v:y"}), (2, {"o:c", "v:y"})], blocked={"v:x", "o:b"})
    assert (wave.together, wave.later, wave.alone) == ([], [], [0, 1, 2])
    assert wave.blocked == {"v:x", "o:a", "o:b", "v:y", "o:c"}


batches = st.lists(st.sets(st.sampled_from([f"k{i}" for i in range(6)]), min_size=1, max_size=3), max_size=12)


@settings(max_examples=400, deadline=None)
@given(batches, st.data())
def test_every_pair_that_shares_a_key_runs_in_message_order(keys: list[set[str]], data: st.DataObject) -> None:
    """Run the batch as `_write_bulk` and `_together` do, with the bulk refusing any export the
    data picks; whenever two exports share a key, the earlier one runs strictly first."""
    step: dict[int, tuple[int, int]] = {}  # index -> (wave, position): waves first, then alone in order
    pending, blocked, wave_number = list(enumerate(keys)), frozenset[str](), 0
    while pending:
        wave = next_wave(pending, blocked)
        assert sorted(wave.together + wave.later + wave.alone) == sorted(i for i, _ in pending)
        refused = {i for i in wave.together if data.draw(st.booleans(), label=f"refuse {i}")}
        for i in wave.together:
            if i not in refused:
                step[i] = (wave_number, 0)
        left = [key for i in refused for key in keys[i]]
        pending, blocked = [(i, keys[i]) for i in wave.later], wave.blocked.union(left)
        wave_number += 1
    for position, i in enumerate(i for i in range(len(keys)) if i not in step):
        step[i] = (wave_number, position)  # the one-by-one path, in message order, after every wave
    for later in range(len(keys)):
        for earlier in range(later):
            if keys[earlier] & keys[later]:
                assert step[earlier] < step[later], (earlier, later, step)
