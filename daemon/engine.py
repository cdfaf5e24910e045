"""The engine: listen → window → predict → sample → play, with no devices and no clock.

Every time comes in as an argument (``now_ns``, ``t_ns``: ``time.monotonic_ns`` in the
daemon, a fake clock in :mod:`daemon.simulate`), so the same code runs live, in tests and
in the demo. One thread calls :meth:`Engine.feed` for each player message and
:meth:`Engine.tick` when the deadline it returned comes (and after each feed); the engine
holds no locks.

Modes:

- ``duet``: the call ends after the phrase gap (``phrase_gap_ms``, or 1.5 × the player's
  median inter-onset time if longer) with no key and no pedal down; the answer, as many
  tokens as the call (or ``answer_tokens``), continues from a copy of the window, so the
  window stays the player's own. A new player note cuts the answer short.
- ``jam``: from the player's first token, one token per pulse; the player's tokens and
  its own share the window. It stops after :data:`JAM_IDLE_PULSES` silent pulses.
- ``solo``: one token per pulse from the primer, on its own; player tokens still join
  the window, so the musician can steer it.

Controls (CC numbers from settings): temperature (0..127 → :data:`CC_TEMPERATURE_RANGE`),
mode (0–42 duet, 43–85 jam, 86–127 solo), mute (>= 64 mutes), panic (any value).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import mido

from daemon.bundle import ModelRunner
from daemon.listen import Listener, PlayedToken
from daemon.record import MIDIDUET, PLAYER, SessionRecorder
from daemon.sampler import Sampler
from daemon.scheduler import NOTE_LENGTH, NoteLedger, Pulse, velocity_for, voice
from daemon.settings import MODES, SUSTAIN_CC, SWITCH_ON, EngineSettings
from daemon.stats import Stats
from daemon.tokens import MIDDLE_C
from daemon.window import Window

NS_PER_MS = 1_000_000
PHRASE_GAP_IOI_FACTOR = 1.5  # a player who leaves long gaps inside a phrase gets a longer gap
JAM_IDLE_PULSES = 16
# A player's token that enters the window this close before the next token's deadline
# leaves the token decided ahead in place (it counts from the token after): deciding again
# takes 0.3 ms, 1-2 ms under load, and would make that note late. In jam under a flood
# of notes, chords closing just before a deadline made ~2% of notes late by up to 1 ms.
KEEP_DECIDED_NS = 3_000_000
# A solo that starts while the engine is running (built before the loop began, unmuted, or
# switched to) plays its first token this long after, decided ahead like every other token.
FIRST_TOKEN_LEAD_NS = 5_000_000
# A duet answer's first token is decided this long before the phrase's end: more than a
# decision with cold caches (p99 up to ~2 ms) and the loop's guard (2 ms), and late enough
# that a player still playing rarely makes the engine decide for nothing.
ANSWER_LEAD_NS = 20_000_000
CC_TEMPERATURE_RANGE = (0.1, 2.0)
CC_MODE_BOUNDS = (43, 86)  # values below the first: duet; below the second: jam; else solo
MAX_CC_VALUE = 127
ANSWER, THRU = "answer", "thru"


def temperature_for_cc(value: int) -> float:
    low, high = CC_TEMPERATURE_RANGE
    return low + (high - low) * value / MAX_CC_VALUE


def mode_for_cc(value: int) -> str:
    if value < CC_MODE_BOUNDS[0]:
        return "duet"
    return "jam" if value < CC_MODE_BOUNDS[1] else "solo"


class Engine:
    """A duet partner driven by messages and deadlines. Not thread-safe: one caller."""

    def __init__(self, model: ModelRunner, settings: EngineSettings, send: Callable[[mido.Message], None],
                 now_ns: int, primer: list[str] | None = None, recorder: SessionRecorder | None = None,
                 stats: Stats | None = None) -> None:
        settings.validate()
        self.model = model
        self.settings = settings
        self.recorder = recorder
        self.stats = stats
        self._send_port = send
        self._now = now_ns
        self._vocabulary = model.vocabulary
        self.ledger = NoteLedger(self._send)
        self.listener = Listener(int(settings.chord_window_ms * NS_PER_MS))
        self.window = Window(model.vocabulary, primer)
        self.sampler = Sampler(settings.sampling, settings.temperature, settings.top_p, settings.seed)
        self.pulse = Pulse(settings.bpm, settings.follow_clock)
        self._out = settings.channel - 1  # mido channels are 0-based
        self._in = None if settings.channel_in is None else settings.channel_in - 1
        self._phrase_gap_ns = int(settings.phrase_gap_ms * NS_PER_MS)
        self._mute = False
        self.mode = settings.mode
        self._playing = False  # an answer, a jam or a solo is under way
        self._next_token_ns: int | None = None
        self._answer_window: Window | None = None
        self._remaining = 0  # tokens left in a duet answer
        self._call_tokens = 0  # player tokens since the last answer began
        # The next token, decided ahead of its deadline so that at the deadline only the
        # send remains: a query costs ~0.3 ms warm and ~1 ms with caches cold between
        # pulses, and that must not make every note late. Dropped whenever what it was
        # decided from changes (a player token, a control, a stop), and decided again.
        self._prepared: int | None = None
        self._prepare_ns = 0  # how long that decision took (window -> model -> sampler)
        self._rng_before: dict[str, Any] | None = None  # the sampler's state before that decision
        # Called with each token the engine decides to play (generate, tests, the demo).
        self.on_token: Callable[[str], None] | None = None
        self._reset_mode(lead_ns=0)  # a new engine's solo starts with it (the runner calls begin())

    # --- the runner's interface -------------------------------------------------------

    def begin(self, now_ns: int) -> None:
        """The loop starts ticking at ``now_ns``. A solo started when the engine was built
        would otherwise play its first token at once, late against that earlier start
        (the runner opens a JACK client, notifies systemd and takes real-time priority in
        between: 27 ms in one measured start) and decided at its deadline; it plays
        :data:`FIRST_TOKEN_LEAD_NS` from now instead, decided ahead."""
        self._now = max(self._now, now_ns)
        due = self._next_token_ns
        if self._playing and due is not None and due < now_ns + FIRST_TOKEN_LEAD_NS:
            self._next_token_ns = now_ns + FIRST_TOKEN_LEAD_NS

    @property
    def mute(self) -> bool:
        return self._mute

    @mute.setter
    def mute(self, value: bool) -> None:
        self._mute = bool(value)
        if self._mute:
            self._stop(release=True)
        elif self.mode == "solo" and not self._playing:
            self._start(self._now + FIRST_TOKEN_LEAD_NS)

    @property
    def temperature(self) -> float:
        return self.sampler.temperature

    def set_mode(self, mode: str) -> None:
        """Switch mode; every sounding note is released first. Raises ``ValueError`` for a bad name."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.release_all()
        self.mode = mode
        self._reset_mode()

    def release_all(self) -> None:
        """End every open note (then CC 123 per channel used) and the answer under way.

        Never raises, even when ``send`` does; jam and solo carry on at their next pulse.
        """
        self.ledger.release_all()
        if self.mode == "duet":
            self._stop(release=False)

    def feed(self, msg: mido.Message, t_ns: int) -> None:
        """Take one player message stamped ``t_ns``; call :meth:`tick` afterwards.

        Odd input (clock, sysex, stray note-offs, other channels) is ignored. Raises only
        ``OSError`` from ``send`` (thru, a cut answer), with the ledger kept consistent.
        """
        self._now = max(self._now, t_ns)
        if msg.type == "clock":
            if self.settings.follow_clock:
                self.pulse.clock_tick(t_ns)
            return
        channel = getattr(msg, "channel", None)
        if channel is None or (self._in is not None and channel != self._in):
            return  # system messages (sysex, active sensing, transport) and filtered channels
        if self.recorder is not None:
            self.recorder.record(PLAYER, msg, t_ns)
        if msg.type == "note_on" and msg.velocity > 0:
            self._player_note_on(msg.note, msg.velocity, t_ns)
        elif msg.type in ("note_off", "note_on"):
            self.listener.note_off(msg.note, t_ns)
            if self.settings.thru:
                self.ledger.note_off(self._out, msg.note, owner=THRU)
        elif msg.type == "control_change":
            self._control(msg.control, msg.value, t_ns)

    def tick(self, now_ns: int) -> int | None:
        """Do everything due at ``now_ns``; return the next deadline (ns), or None.

        Raises ``OSError`` from ``send`` after keeping the ledger consistent.
        """
        self._now = max(self._now, now_ns)
        played = self.listener.flush(now_ns)
        if played is not None:
            self._player_token(played)
        self.ledger.release_due(now_ns)
        if self.mode == "duet" and not self._playing:
            end = self._phrase_end_ns()
            if end is not None and now_ns >= end:
                self._start_answer(end)
        while self._next_token_ns is not None and now_ns >= self._next_token_ns:
            self._play_due(now_ns)
        if self._prepared is None and (self._playing or self._answer_due(now_ns)):
            self._prepare()
        return self._next_deadline()

    # --- listening ------------------------------------------------------------------

    def _player_note_on(self, note: int, velocity: int, t_ns: int) -> None:
        if self.stats is not None:
            self.stats.notes_in += 1
        if self.mode == "duet" and self._playing:
            self._stop(release=True)  # the player cuts in: the answer gives way at once
        played = self.listener.note_on(note, velocity, t_ns)
        if played is not None:
            self._player_token(played)
        if self.settings.thru:
            self.ledger.note_on(self._out, note, velocity, THRU)

    def _player_token(self, played: PlayedToken) -> None:
        self.window.push(played.token)  # False for tokens the model does not know: dropped
        due = self._next_token_ns
        if due is None or due - self._now > KEEP_DECIDED_NS:
            self._discard_prepared()  # the window changed: decide again from it
        self._call_tokens += 1
        if self.mode == "jam" and not self._playing and not self._mute:
            self._start(played.onset_ns + self._pulse_ns(played.onset_ns))

    def _control(self, control: int, value: int, t_ns: int) -> None:
        s = self.settings
        # Only our own controls change what the next token should be: the mod wheel,
        # volume or expression must not throw away the token decided ahead of its deadline.
        if control == SUSTAIN_CC:
            self.listener.pedal(value, t_ns)
        elif control == s.cc_temperature:
            self._discard_prepared()  # the new temperature applies from the next token on
            self.sampler.temperature = temperature_for_cc(value)
        elif control == s.cc_mode:
            mode = mode_for_cc(value)
            if mode != self.mode:
                self.set_mode(mode)
        elif control == s.cc_mute:
            self.mute = value >= SWITCH_ON
        elif control == s.cc_panic:
            self.listener.reset_phrase()  # keys whose note-offs were lost must not block phrase ends
            self.release_all()

    # --- playing --------------------------------------------------------------------

    def _reset_mode(self, lead_ns: int = FIRST_TOKEN_LEAD_NS) -> None:
        self._stop(release=False)
        self._call_tokens = 0
        if self.mode == "solo" and not self._mute:
            self._start(self._now + lead_ns)

    def _start(self, first_ns: int) -> None:
        self._playing = True
        self._next_token_ns = first_ns
        if self.stats is not None:
            self.stats.answers += 1

    def _stop(self, release: bool) -> None:
        if release:
            self.ledger.release_owner(ANSWER)
        self._playing = False
        self._next_token_ns = None
        self._discard_prepared()
        self._answer_window = None
        self._remaining = 0

    def _phrase_end_ns(self) -> int | None:
        listener = self.listener
        if self._call_tokens == 0 or listener.busy() or listener.last_activity_ns is None:
            return None
        ioi = listener.median_ioi_ns() or 0
        return listener.last_activity_ns + max(self._phrase_gap_ns, int(PHRASE_GAP_IOI_FACTOR * ioi))

    def _start_answer(self, at_ns: int) -> None:
        length = self.settings.answer_tokens or self._call_tokens
        self._call_tokens = 0
        if self._mute:
            return
        self._answer_window = self.window.copy()
        self._remaining = length
        self._start(at_ns)

    def _pulse_ns(self, now_ns: int) -> int:
        return self.pulse.pulse_ns(now_ns, self.listener.median_ioi_ns())

    def _play_due(self, now_ns: int) -> None:
        scheduled = self._next_token_ns
        assert scheduled is not None
        pulse = self._pulse_ns(now_ns)
        if self.mode == "jam" and self._jam_idle(now_ns, pulse):
            self._stop(release=False)
            return
        self._play_token(scheduled, now_ns, pulse)
        if self.mode == "duet":
            self._remaining -= 1
            if self._remaining <= 0:
                self._stop(release=False)  # scheduled note-offs still end the last notes
                return
        following = scheduled + pulse
        # Far behind (a stalled machine): skip the missed beats rather than rush them out.
        self._next_token_ns = following if following > now_ns else now_ns + pulse

    def _jam_idle(self, now_ns: int, pulse: int) -> bool:
        last = self.listener.last_activity_ns
        return not self.listener.busy() and (last is None or now_ns - last > JAM_IDLE_PULSES * pulse)

    def _answer_due(self, now_ns: int) -> bool:
        """Duet, the player silent and the phrase's end near: decide the answer's first
        token now, from the window as it is (a player token closing meanwhile discards it)."""
        if self.mode != "duet" or self._playing or self._mute:
            return False
        end = self._phrase_end_ns()
        return end is not None and now_ns >= end - ANSWER_LEAD_NS

    def _prepare(self) -> None:
        """Decide the next token from the window as it is now (query + sample)."""
        stats = self.stats
        started = stats.clock() if stats is not None else 0
        window = self._answer_window if self._answer_window is not None else self.window
        self._rng_before = self.sampler.rng.bit_generator.state
        self._prepared = self.sampler.sample(self.model.query(window.ids), window.ids)
        self._prepare_ns = stats.clock() - started if stats is not None else 0

    def _play_token(self, scheduled: int, now_ns: int, pulse: int) -> None:
        stats = self.stats
        started = stats.clock() if stats is not None else now_ns
        if self._prepared is None:  # nothing decided ahead (the first token, or just invalidated)
            self._prepare()
        token_id, decided_ns = self._prepared, self._prepare_ns
        assert token_id is not None
        self._prepared = self._rng_before = None
        token = self._vocabulary[token_id]
        register = self.listener.register()
        notes = voice(token, MIDDLE_C if register is None else register)
        velocity = velocity_for(self.settings.velocity, self.listener.median_velocity())
        off_at = max(scheduled, now_ns) + int(pulse * NOTE_LENGTH)
        for note in notes:
            self.ledger.note_on(self._out, note, velocity, ANSWER, off_at)
            if stats is not None:
                sent = stats.clock()
                # Decision time counts the whole chain (window -> model -> sampler -> message),
                # though the model's part ran ahead of the deadline.
                stats.note_sent(decided_ns + (sent - started), sent - scheduled)
        # The notes first, the bookkeeping after: the window is next read when deciding ahead.
        window = self._answer_window if self._answer_window is not None else self.window
        window.push_id(token_id)
        if self.on_token is not None:
            self.on_token(token)

    def _discard_prepared(self) -> None:
        """Drop the token decided ahead and give its random draw back, so that how often a
        decision was made and dropped (a matter of timing) does not change the tokens that
        play: a simulated duet and a real one must agree."""
        if self._prepared is not None and self._rng_before is not None:
            self.sampler.rng.bit_generator.state = self._rng_before
        self._prepared = self._rng_before = None

    def _next_deadline(self) -> int | None:
        deadlines = [self.listener.pending_deadline, self.ledger.next_due, self._next_token_ns]
        if self.mode == "duet" and not self._playing:
            end = self._phrase_end_ns()
            deadlines.append(end)
            if end is not None and self._prepared is None and not self._mute:
                deadlines.append(end - ANSWER_LEAD_NS)  # when to decide the answer's first token
        present = [d for d in deadlines if d is not None]
        return min(present) if present else None

    def _send(self, msg: mido.Message) -> None:
        self._send_port(msg)
        if self.recorder is not None:
            self.recorder.record(MIDIDUET, msg, self._now)
