"""When a node's object store counts as stuck: the rules the spill watch stops a run on."""

from __future__ import annotations

from types import SimpleNamespace

from pipeline.spill_watch import Disk, Stall, cannot_spill, short_of_room


def store(used: int, pulls_queued: bool, capacity: int = 80_000_000) -> SimpleNamespace:
    """A raylet's ObjectStoreStats, as far as the watch reads it (Ray calls the capacity `avail`)."""
    return SimpleNamespace(object_store_bytes_used=used, object_store_bytes_avail=capacity,
                           object_pulls_queued=pulls_queued)


def test_a_store_is_short_of_room_when_full_or_when_pulls_wait_for_room():
    assert short_of_room(store(80_020_080, pulls_queued=False))  # the engine test's hang
    assert short_of_room(store(75_235_443, pulls_queued=True))  # CI's: a task's arguments wait for room
    assert not short_of_room(store(75_235_443, pulls_queued=False))
    assert not short_of_room(store(0, pulls_queued=False))


def test_a_full_store_that_creates_nothing_is_stalled_from_when_it_was_first_seen_so():
    stall = Stall()
    assert stall.seen(0.0, short=True, created=120) == 0.0
    assert stall.seen(5.0, short=True, created=120) == 5.0
    assert stall.seen(65.0, short=True, created=120) == 65.0


def test_an_object_created_or_room_in_the_store_starts_the_count_again():
    stall = Stall()
    stall.seen(0.0, short=True, created=120)
    assert stall.seen(30.0, short=True, created=121) == 0.0  # Ray made room: spilling works
    assert stall.seen(50.0, short=True, created=121) == 20.0
    assert stall.seen(55.0, short=False, created=121) == 0.0  # tasks ended and freed their objects
    assert stall.seen(60.0, short=True, created=121) == 0.0
    assert stall.seen(70.0, short=True, created=121) == 10.0


def test_a_disk_is_too_full_from_rays_share_of_it_on():
    gib = 2**30
    assert Disk("/tmp/ray", free=5 * gib, total=100 * gib, share=0.95).too_full
    assert not Disk("/tmp/ray", free=6 * gib, total=100 * gib, share=0.95).too_full
    assert Disk("/tmp/ray", free=74 * gib, total=252 * gib, share=0.001).too_full
    assert not Disk("/tmp/ray", free=0, total=0, share=0.95).too_full  # a folder that reports no size


def test_the_line_says_where_and_what_to_do_locally_and_on_a_cluster():
    disk = Disk("/tmp/ray", free=int(2.5 * 2**30), total=100 * 2**30, share=0.95)
    assert cannot_spill("the Ray node 10.0.0.7", disk, local=True) == (
        "the Ray node 10.0.0.7 ran out of object store memory and cannot spill to its disk, which is fuller than "
        "Ray allows (95% by default) (/tmp/ray: 2.5 GiB free of 100 GiB): free space there, or give Ray a "
        "temporary folder on a larger disk (RAY_TMPDIR) or more object store memory (ray.object_store_memory)")
    assert cannot_spill("a Ray node", None, local=False).endswith(
        "give Ray a temporary folder on a larger disk (ray start --temp-dir) or more object store memory")
