"""The owed-runs hint: whether ``next`` may skip its three owed-run queries (and its
look at the reprocessing queue).

One document, ``cursors/owed``. Every commit that makes a run owed — a job
with a re-offer ending, a failure given a retry time, an operator's retry, an
import of such a job — also writes it, blindly, in the same transaction or
batch: ``reoffers`` becomes true for a re-offer, ``retry_from`` (epoch
seconds, rounded down) becomes at most the retry time (Firestore's
``Minimum``). A re-offer marked on a job in flight makes nothing owed until
the job ends, and the transaction that ends it writes the hint; a mark that
lands just after the job ended is noted by its writer (:meth:`JobStore
<shared.store.jobs.JobStore.note_owed>`).

``next`` reads the hint (one read) and runs only the queries it allows. When
those come back empty it clears the hint — ``reoffers`` false, ``retry_from``
the earliest retry time still ahead — by an update guarded by the update time
it read: a commit that made a run owed in the meantime changed that time, so
the clear is refused and nothing owed is ever hidden. A missing document
(before the first clear) allows every query, and a clear older than the
recheck interval does too, so owed runs written by something that does not
know the hint are found within that interval.

The same document says whether reprocessing may be queued (``queued``): set
by every enqueueing (a blind write after the items' commit), cleared the same
guarded way by a ``next`` that found the head of the queue empty; and whether
a pause may be in force (``pauses``): set in the batch that creates a pause,
cleared the same way by a ``next`` that found none.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import firestore

from shared.model import JobRecord, State
from shared.store.common import StoreStats
from shared.store.errors import guarded

#: The hint's document id; it lives in the cursors collection, beside the stream cursors
#: (:class:`~shared.store.cursors.CursorStore` reads them all in one call).
OWED_DOCUMENT = "owed"

#: The retry time of a hint that knows nothing: every retry may be due.
_UNKNOWN = datetime.min.replace(tzinfo=UTC)

#: What a job owes while it is ended: (a re-offer without a retry, the retry time).
Owing = tuple[bool, datetime | None]


def owing(record: JobRecord) -> Owing | None:
    """What the ended job ``record`` owes: a re-offer run as soon as possible, or a retry
    from a time (a re-offer of a failed job with a retry time comes with the retry); None
    if nothing, or if the job is in flight."""
    state = record.status.state
    if state is State.FAILED and record.retry_at is not None:
        return (False, record.retry_at)
    if state in (State.COMPLETE, State.FAILED) and record.reoffer:
        return (True, None)
    return None


def _seconds(at: datetime) -> int:
    """``at`` as whole epoch seconds, rounded down (so a hint is never later than the time)."""
    return int(at.timestamp() // 1)


@dataclass(frozen=True)
class OwedHint:
    """The hint as read: which owed-run queries may find something, and its update time."""

    #: A re-offer may be owed (true while unknown).
    reoffers: bool = True
    #: No retry is due before this (None: none is known to come; ``datetime.min`` while unknown).
    retry_from: datetime | None = _UNKNOWN
    #: When the queries last came back empty (None: never).
    checked_at: datetime | None = None
    #: Reprocessing may be queued (true while unknown).
    queued: bool = True
    #: When the head of the reprocessing queue was last found empty (None: never).
    queue_checked_at: datetime | None = None
    #: A pause may be in force (true while unknown).
    pauses: bool = True
    #: When no pause was last found in force (None: never).
    pauses_checked_at: datetime | None = None
    #: The document's update time as read (None: there is no document).
    update_time: datetime | None = None

    def queries(self, now: datetime, recheck: timedelta) -> tuple[bool, bool]:
        """Whether the re-offer queries and the retry query may find something at ``now``.

        Both, whatever the hint says, when its last clear is ``recheck`` old or there is none.
        """
        if self.checked_at is None or now - self.checked_at >= recheck:
            return True, True
        return self.reoffers, self.retry_from is not None and self.retry_from <= now

    def queue(self, now: datetime, recheck: timedelta) -> bool:
        """Whether the head of the reprocessing queue may hold something at ``now``."""
        checked = self.queue_checked_at
        return self.queued or checked is None or now - checked >= recheck

    def paused(self, now: datetime, recheck: timedelta) -> bool:
        """Whether a pause may be in force at ``now``."""
        checked = self.pauses_checked_at
        return self.pauses or checked is None or now - checked >= recheck


def hint_from(snap: Any) -> OwedHint:
    """The hint a document snapshot holds; a missing document allows every query."""
    data = snap.to_dict() if snap.exists else None
    if data is None:
        return OwedHint()
    retry_from = data.get("retry_from")
    return OwedHint(
        bool(data.get("reoffers", True)),
        None if retry_from is None else datetime.fromtimestamp(retry_from, UTC),
        data.get("checked_at"),
        bool(data.get("queued", True)),
        data.get("queue_checked_at"),
        bool(data.get("pauses", True)),
        data.get("pauses_checked_at"),
        snap.update_time,
    )


class OwedHintStore:
    """The owed-runs hint document: noted by the commits that make a run owed, cleared by ``next``."""

    def __init__(
        self, client: firestore.Client, collection: str, stats: StoreStats | None = None
    ) -> None:
        self.ref = client.collection(collection).document(OWED_DOCUMENT)
        #: Counts its reads and clears (a note is counted by the commit that carries it).
        self.stats = stats or StoreStats()

    def note(self, writer: Any, owes: Owing) -> int:
        """Note what a job now owes, as a blind write in ``writer`` (a transaction or batch).

        Returns the number of document writes added (1).
        """
        reoffer, retry_at = owes
        fields: dict[str, Any] = {}
        if reoffer:
            fields["reoffers"] = True
        if retry_at is not None:
            fields["retry_from"] = firestore.Minimum(_seconds(retry_at))
        writer.set(self.ref, fields, merge=True)
        return 1

    @guarded
    def note_queued(self) -> None:
        """Note that reprocessing was queued (one blind write, made after the items' commit)."""
        self.ref.set({"queued": True}, merge=True)
        self.stats.add(writes=1)

    @guarded
    def clear_queued(self, read: OwedHint, now: datetime) -> bool:
        """Record that the head of the reprocessing queue was empty at ``now``.

        Only if the hint is unchanged since ``read`` (as :meth:`clear`).
        Returns whether it was written.
        """
        return self._write_if_unchanged(read, {"queued": False, "queue_checked_at": now})

    def note_paused(self, writer: Any) -> None:
        """Note that a pause is in force, as a blind write in ``writer`` (the pause's batch)."""
        writer.set(self.ref, {"pauses": True}, merge=True)

    @guarded
    def clear_paused(self, read: OwedHint, now: datetime) -> bool:
        """Record that no pause was in force at ``now``, if the hint is unchanged since ``read``."""
        return self._write_if_unchanged(read, {"pauses": False, "pauses_checked_at": now})

    @guarded
    def read(self) -> OwedHint:
        """Return the hint (one read); a missing document allows every query."""
        snap = self.ref.get()
        self.stats.add(reads=1)
        return hint_from(snap)

    @guarded
    def clear(self, read: OwedHint, next_retry: datetime | None, now: datetime) -> bool:
        """Record that nothing is owed at ``now`` and the next retry is at ``next_retry``.

        Only if the hint is unchanged since ``read`` (created if it had no
        document): a run made owed since then is not hidden. Returns whether it
        was written.
        """
        fields: dict[str, Any] = {"reoffers": False, "checked_at": now}
        if next_retry is not None:
            fields["retry_from"] = _seconds(next_retry)
        elif read.update_time is not None:
            fields["retry_from"] = firestore.DELETE_FIELD
        return self._write_if_unchanged(read, fields)

    def _write_if_unchanged(self, read: OwedHint, fields: dict[str, Any]) -> bool:
        """Write ``fields`` if the hint is unchanged since ``read`` (created if it had no document)."""
        try:
            if read.update_time is None:
                self.ref.create(fields)
            else:
                option = firestore.Client.write_option(last_update_time=read.update_time)
                self.ref.update(fields, option=option)
            return True
        except (gexc.Conflict, gexc.FailedPrecondition, gexc.NotFound):
            return False
        finally:
            self.stats.add(writes=1)
