"""Window: the last 32 tokens the model predicts from, with how each was played.

Tokens outside the model's vocabulary are dropped (as the training pipeline drops them).
Before 32 tokens have been played the window is left-padded from a primer:

- the primer tokens given (e.g. read from ``--primer FILE.mid``), those in the
  vocabulary, repeated cyclically so the window ends on the primer's last token;
- else a fixed sequence derived from the vocabulary: ids ``0, 1, 2, ...`` in order
  (wrapping when the vocabulary is smaller than the window). It is deterministic, so a
  seeded run is repeatable, and it uses only what every bundle has.

Each token pushed with :meth:`Window.push_played` also brings its onset, velocity and
pitches, the player's and mididuet's own alike: the window keeps the *pulse* (the median
of the last IOIs) and the *level* (the median of the last velocities) they give, and,
for an expressive bundle, each token's feature classes as the trainer derived them
(:mod:`..music.expression`: delay and velocity against the pulse and level before it,
voicing from its pitches, the length of the token before it if that one had stopped
sounding, :meth:`Window.set_length`, how long the oldest token still sounding at its
onset has sounded, how loud it and the tokens before it were against the level after it,
and how long each of the tokens before it sounded, or has sounded so far, as they stand at
its onset). A token's features never change once it is pushed:
what the model reads is what was known then, as in training. Primer tokens have unknown
features.

The ids and features live in preallocated int32 arrays, shifted in place on each push.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence

import numpy as np

from ..music.expression import (
    FEATURES,
    HISTORY,
    SOUNDING_LOOKBACK,
    UNKNOWN,
    Encoding,
    running_median,
    standing,
)
from .bundle import WINDOW

NO_ONSET = -1
SOUNDING = np.iinfo(np.int64).max  # the end of a token whose notes have not all stopped yet


def primer_ids(vocabulary: Mapping[str, int], primer: Sequence[str] | None = None,
               size: int = WINDOW) -> list[int]:
    """The ``size`` ids that fill the window before anything is played."""
    known = [vocabulary[t] for t in primer or () if t in vocabulary]
    if not known:
        known = [i % len(vocabulary) for i in range(size)]
    return [known[(i - size) % len(known)] for i in range(size)]


class Window:
    """The last ``size`` token ids, oldest first, and how they were played."""

    def __init__(self, vocabulary: Sequence[str], primer: Sequence[str] | None = None,
                 size: int = WINDOW, encoding: Encoding | None = None) -> None:
        self.vocabulary = tuple(vocabulary)
        self.encoding = encoding
        self._index = {token: i for i, token in enumerate(self.vocabulary)}
        self.ids = np.array(primer_ids(self._index, primer, size), dtype=np.int32)
        self.features = np.full((size, len(encoding.features if encoding else FEATURES)), UNKNOWN, dtype=np.int32)
        history = encoding.history if encoding is not None else HISTORY
        self._iois: deque[int] = deque(maxlen=history)
        self._velocities: deque[int] = deque(maxlen=history)
        self._last_onset: int | None = None
        self._last_length: int | None = None  # of the last token, once known
        self._last_own = False
        # The running pulse and level, which only push_played moves: worked out there, once.
        self._pulse: float | None = None
        self._level: float | None = None
        # Per position: its onset (to find it again for set_length), whose it is (in simulated
        # time mididuet's onset can equal a player's to the nanosecond), the pulse before it,
        # and when its notes stopped (SOUNDING until known).
        self._onsets = np.full(size, NO_ONSET, dtype=np.int64)
        self._own = np.zeros(size, dtype=bool)
        self._pulses = np.zeros(size, dtype=np.float64)
        self._ends = np.full(size, SOUNDING, dtype=np.int64)
        self._loudness: np.ndarray = np.full(size, np.nan)  # each token's loudest velocity, NaN: not played

    def token_id(self, token: str) -> int | None:
        return self._index.get(token)

    def push(self, token: str) -> bool:
        """Append a token without how it was played; False (and no change) when it is not
        in the vocabulary."""
        token_id = self._index.get(token)
        if token_id is None:
            return False
        self.push_id(token_id)
        return True

    def push_id(self, token_id: int) -> None:
        """Append a token id without how it was played (its features unknown)."""
        if not 0 <= token_id < len(self.vocabulary):
            raise ValueError(f"token id must be in range 0..{len(self.vocabulary) - 1}, got {token_id}")
        self._shift()
        self.ids[-1] = token_id

    def push_played(self, token_id: int, onset_ns: int, velocity: int, lowest: int, highest: int, notes: int,
                    length_ns: int | None = None, after_a_pause: bool = False) -> None:
        """Append a token as played: its onset, loudest velocity, pitches and, when known
        already (mididuet's own), how long it sounds. The pulse and level move on.
        ``after_a_pause``: the interval before it is no rhythm (a duet answer's first
        token, after the call's pause): its delay and timing are unknown, as a piece's
        first token's, and the interval stays out of the pulse."""
        pulse, level = self.pulse_ns(), self.level()
        previous = self._previous_length(onset_ns)
        sounding = self._sounding(onset_ns)
        self.push_id(token_id)
        ioi = None if self._last_onset is None or after_a_pause else onset_ns - self._last_onset
        self._onsets[-1], self._pulses[-1] = onset_ns, pulse or 0.0
        self._own[-1] = length_ns is not None
        self._ends[-1] = SOUNDING if length_ns is None else onset_ns + length_ns
        self._loudness[-1] = velocity
        if ioi is not None and ioi > 0:
            self._iois.append(ioi)
        self._velocities.append(velocity)
        self._last_onset, self._last_length, self._last_own = onset_ns, length_ns, length_ns is not None
        # The whole deque (the bundle's history long), as training reads it: not the default 16.
        self._pulse = running_median(list(self._iois), len(self._iois), len(self._iois))
        self._level = running_median(list(self._velocities), len(self._velocities), len(self._velocities))
        encoding = self.encoding
        if encoding is not None:
            token = self.vocabulary[token_id]
            delay = encoding.delay_class(ioi, pulse) if ioi is not None else None
            timing = encoding.timing_class(ioi, delay, pulse) if ioi is not None else None
            # Against the level after this token, the one the next token's velocity is drawn
            # against. (Without loud features, [-0:] would be the whole array.)
            loud = encoding.loud_features(self._loudness[-encoding.loud_count:].tolist(), self._level) \
                if encoding.loud_count else ()
            # In the pulse after this token too: the unit of the next token's length.
            known = encoding.known_features(self._before(onset_ns, encoding.known_count), self._pulse) \
                if encoding.known_count else ()
            self.features[-1] = encoding.played(token, delay, timing, previous,
                                                encoding.velocity_class(velocity, level), lowest, highest, notes,
                                                sounding, loud, known)

    def _previous_length(self, onset_ns: int) -> int:
        """The length feature a token starting at ``onset_ns`` carries: the last token's."""
        encoding = self.encoding
        if encoding is None or self._last_onset is None:
            return UNKNOWN
        length = self._last_length
        ended = length is not None and self._last_onset + length <= onset_ns
        pulse = float(self._pulses[-1]) or None
        return encoding.previous_length(encoding.length_class(length, pulse) if ended else None, ended)

    def _before(self, onset_ns: int, count: int) -> list[tuple[float, bool] | None]:
        """The ``count`` tokens before the last one (pushed at ``onset_ns``), latest first, as
        :meth:`Encoding.known_features` reads them: (length, True) if stopped by then, else
        (how long it has sounded, False); None for a primer token or one that began later."""
        before: list[tuple[float, bool] | None] = []
        for k in range(2, count + 2):
            start, end = int(self._onsets[-k]), int(self._ends[-k])
            if start == NO_ONSET or start >= onset_ns:
                before.append(None)
            else:
                before.append(standing(start, end, onset_ns))
        return before

    def _sounding(self, onset_ns: int) -> int:
        """The sounding feature of a token starting at ``onset_ns``: how long the oldest
        token in the window still sounding then has sounded, in the pulse before it."""
        encoding = self.encoding
        if encoding is None or "sounding" not in encoding.features:
            return UNKNOWN
        onsets, ends = self._onsets[-SOUNDING_LOOKBACK:], self._ends[-SOUNDING_LOOKBACK:]
        # Tokens that began before this one (a player's token can enter the window after a
        # later one of mididuet's, once its chord window closes) and sound past its onset.
        still = (onsets != NO_ONSET) & (onsets < onset_ns) & (ends > onset_ns)
        age = onset_ns - int(onsets[still].min()) if still.any() else None
        return encoding.sounding_feature(age, self.pulse_ns())

    def stopped_sounding(self, now_ns: int, unknown_too: bool = False) -> None:
        """Every token known to sound past ``now_ns`` stopped then (its notes were released);
        ``unknown_too``: so did those still sounding whose end was never heard (the player's
        held keys, forgotten at a panic)."""
        ends = self._ends
        cut = (ends > now_ns) if unknown_too else (ends > now_ns) & (ends != SOUNDING)
        ends[cut] = now_ns
        # The next token's length feature reads the last token's length: it stopped now too.
        last, length = self._last_onset, self._last_length
        if last is not None and now_ns >= last and (
                (length is not None and last + length > now_ns) or (length is None and unknown_too)):
            self._last_length = now_ns - last

    def set_length(self, onset_ns: int, length_ns: int, own: bool = False) -> int | None:
        """The player's token played at ``onset_ns`` has stopped sounding after ``length_ns``
        (or, ``own``, mididuet's will: a note held on): the next token will carry it (a token
        already after it has it as held). Returns its length class, or None when unknown."""
        if onset_ns == self._last_onset and own == self._last_own:
            self._last_length = length_ns
        hits = np.flatnonzero((self._onsets == onset_ns) & (self._own == own))
        self._ends[hits] = onset_ns + length_ns
        if self.encoding is None:
            return None
        pulse = float(self._pulses[int(hits[-1])]) if len(hits) else 0.0
        return self.encoding.length_class(length_ns, pulse or None)

    def pulse_ns(self) -> float | None:
        """The median of the last IOIs in the window, or None before two onsets."""
        return self._pulse

    def level(self) -> float | None:
        """The median of the last velocities in the window, or None before any."""
        return self._level

    def _shift(self) -> None:
        self.ids[:-1] = self.ids[1:]
        self.features[:-1] = self.features[1:]
        self.features[-1] = UNKNOWN
        self._onsets[:-1] = self._onsets[1:]
        self._onsets[-1] = NO_ONSET
        self._own[:-1] = self._own[1:]
        self._own[-1] = False
        self._pulses[:-1] = self._pulses[1:]
        self._ends[:-1] = self._ends[1:]
        self._ends[-1] = SOUNDING
        self._loudness[:-1] = self._loudness[1:]
        self._loudness[-1] = np.nan

    def copy(self) -> Window:
        """An independent window with the same tokens and history (a duet answer
        continues in a copy)."""
        other = Window.__new__(Window)
        other.vocabulary, other.encoding, other._index = self.vocabulary, self.encoding, self._index
        other.ids, other.features = self.ids.copy(), self.features.copy()
        other._iois, other._velocities = deque(self._iois, self._iois.maxlen), deque(self._velocities,
                                                                                     self._velocities.maxlen)
        other._last_onset, other._last_length, other._last_own = self._last_onset, self._last_length, self._last_own
        other._pulse, other._level = self._pulse, self._level
        other._onsets, other._pulses, other._ends = self._onsets.copy(), self._pulses.copy(), self._ends.copy()
        other._own, other._loudness = self._own.copy(), self._loudness.copy()
        return other

    def tokens(self) -> list[str]:
        return [self.vocabulary[i] for i in self.ids]
