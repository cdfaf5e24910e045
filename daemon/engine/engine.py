"""The engine: listen → window → predict → sample → play, with no devices and no clock.

Every time comes in as an argument (``now_ns``, ``t_ns``: ``time.monotonic_ns`` in the
daemon, a fake clock in :mod:`.simulate`), so the same code runs live, in tests and in
the demo. One thread calls :meth:`Engine.feed` for each player message and
:meth:`Engine.tick` when the deadline it returned comes (and after each feed); the engine
holds no locks.

The pipeline, once per token:

1. **listen** (:mod:`..listen.listener`): note-ons within the chord window become one token;
2. **window** (:mod:`..predict.window`): the last 32 token ids, the player's and (jam,
   solo) its own;
3. **predict** (:mod:`..predict.bundle`): one onnxruntime call gives the next token's
   probabilities, mixed with the **session memory** (:mod:`..predict.memory`: n-grams of
   what this session played, the player's and its own, weighed by ``memory``);
   **sample** (:mod:`..predict.sampler`) picks one, with a loop guard;
4. **play** (:mod:`..play`): at the pulse, voiced near the player's hand, at the player's
   velocity, every note in the ledger until its note-off is sent.

When a performance starts and ends is the mode's business (:mod:`.modes`); the next token
is always decided ahead of its deadline, so at the deadline only the send remains.

Controls (CC numbers from settings, :mod:`.controls`): temperature, mode, mute (>= 64
mutes), panic (any value).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import mido
import numpy as np

from ..listen.listener import Listener, PlayedToken
from ..music.expression import FEATURES, Encoding
from ..music.midi import SUSTAIN, SWITCH_ON
from ..music.tokens import MIDDLE_C, is_chord
from ..music.units import ms_to_ns
from ..play.ledger import NoteLedger
from ..play.pulse import NOTE_LENGTH, Pulse
from ..play.rhythm import clamp_unit, note_length_ns, onset_after, reaching, snap_to_grid
from ..play.voicing import velocity_for, voice, voice_chord
from ..predict.bundle import ModelRunner
from ..predict.heads import HeadSampler
from ..predict.memory import REMEMBERED_HEADS, NGramMemory
from ..predict.sampler import Sampler
from ..predict.window import Window
from .controls import memory_for_cc, mode_for_cc, temperature_for_cc
from .modes import FIRST_TOKEN_LEAD_NS, MODES, Mode
from .observe import Observer
from .settings import EngineSettings
from .stats import Stats

# A player's token that enters the window this close before the next token's deadline
# leaves the token decided ahead in place (it counts from the token after): deciding again
# would make that note late (benchmarks/RESULTS.md, the flood rows).
KEEP_DECIDED_NS = 3_000_000
ANSWER, THRU = "answer", "thru"  # the ledger's owners
# The heads the rhythm temperature ("steadiness") applies to: when, and how loud (drawn
# untempered, the loudness jumped more than Chopin's). The length is drawn as predicted:
# sharpening its right-skewed classes shortened the answers (docs/model-quality.md).
RHYTHM_HEADS = ("delay", "timing", "velocity")
log = logging.getLogger("mididuet.engine")


@dataclass(frozen=True, slots=True)
class Decision:
    """The next token, decided ahead: its id and, when expressive, how it is to be played
    (each head's class index) and the length head's distribution its length was drawn from."""

    token_id: int
    classes: dict[str, int] | None = None
    lengths: np.ndarray | None = field(default=None, compare=False)


@dataclass(slots=True)
class OwnNote:
    """mididuet's last token of a performance, while its length may still change: its notes
    are held on (legato) once the next onset is decided, if they would stop before it."""

    onset_ns: int
    notes: list[int]
    drawn_ns: int  # its length as drawn
    drawn_class: int
    length_ns: int  # as it plays now
    unit_ns: int  # the pulse its length classes are in
    lengths: np.ndarray  # the distribution it was drawn from


class Engine:
    """A duet partner driven by messages and deadlines. Not thread-safe: one caller."""

    def __init__(self, model: ModelRunner, settings: EngineSettings, send: Callable[[mido.Message], None],
                 now_ns: int, primer: list[str] | None = None, stats: Stats | None = None,
                 observers: Iterable[Observer] = ()) -> None:
        settings.validate()
        self.model = model
        self.settings = settings
        self.stats = stats
        self.observers = tuple(observers)
        self._send_port = send
        self.now_ns = now_ns
        self._vocabulary = model.vocabulary
        self.ledger = NoteLedger(self._send)
        self.listener = Listener(ms_to_ns(settings.chord_window_ms))
        # The expressive heads are played when the bundle has them and the pulse is not asked for.
        self.encoding: Encoding | None = model.info.expression if settings.rhythm == "expressive" else None
        if settings.rhythm == "expressive" and self.encoding is None:
            log.info("%s has no expressive heads (bundle format %d): playing the pulse rhythm",
                     model.path.name, model.info.format_version)
        self.window = Window(model.vocabulary, primer, encoding=self.encoding)
        self.rhythm_temperature = settings.rhythm_temperature
        # What this session played, the player's and its own: the tokens, and each head's classes.
        self.memory_weight = settings.memory
        self.memory = NGramMemory(len(self._vocabulary))
        self.head_memory = {name: NGramMemory(self.encoding.size(name)) for name in self.encoding.heads
                            if name in REMEMBERED_HEADS} if self.encoding is not None else {}
        self.sampler = Sampler(settings.sampling, settings.temperature, settings.top_p, settings.seed)
        self.head_sampler = (HeadSampler(self.encoding.heads, model.tables, RHYTHM_HEADS)
                             if self.encoding is not None else None)
        self.pulse = Pulse(settings.bpm, settings.follow_clock)
        self.phrase_gap_ns = ms_to_ns(settings.phrase_gap_ms)
        self._out = settings.channel - 1  # mido channels are 0-based
        self._in = None if settings.channel_in is None else settings.channel_in - 1
        self._mute = False
        self.playing = False  # an answer, a jam or a solo is under way
        self._next_token_ns: int | None = None
        # The first token of a performance plays when its mode said; the later ones of an
        # expressive performance when their decision says (None until it is made).
        self._onset_fixed = False
        # The next token, decided ahead of its deadline so that at the deadline only the
        # send remains. Dropped whenever what it was decided from changes (a player
        # token, a control, a stop).
        self._prepared: Decision | None = None
        self._own_note: OwnNote | None = None  # mididuet's last token, while its length may change
        self._length_ratios = np.asarray(self.encoding.length if self.encoding is not None else ())
        self._prepare_ns = 0  # how long that decision took (window -> model -> sampler)
        # The sampler's state before the decision ahead: marked when a token is played, after
        # its notes (so not in the next decision's time), and given back when one is dropped.
        self._rng_mark: dict[str, Any] = self.sampler.rng.bit_generator.state
        self._mode: Mode = MODES[settings.mode](self)
        self._reset_mode(lead_ns=0)  # a new engine's solo starts with it (the runner calls begin())

    # --- the runner's interface -------------------------------------------------------

    def begin(self, now_ns: int) -> None:
        """The loop starts ticking at ``now_ns``. A solo started when the engine was built
        would otherwise play its first token at once, late against that earlier start
        and decided at its deadline; it plays :data:`FIRST_TOKEN_LEAD_NS` from now
        instead, decided ahead."""
        self.now_ns = max(self.now_ns, now_ns)
        due = self._next_token_ns
        if self.playing and due is not None and due < now_ns + FIRST_TOKEN_LEAD_NS:
            self._next_token_ns = now_ns + FIRST_TOKEN_LEAD_NS

    @property
    def mode(self) -> str:
        return self._mode.name

    @property
    def mute(self) -> bool:
        return self._mute

    @mute.setter
    def mute(self, value: bool) -> None:
        self._mute = bool(value)
        if self._mute:
            self.stop(release=True)
        else:
            self._mode.unmuted()
        self._changed("mute", self._mute)

    @property
    def temperature(self) -> float:
        return self.sampler.temperature

    def set_temperature(self, value: float) -> None:
        """The sampler's temperature from the next token on (the one decided ahead is dropped)."""
        self._discard_prepared()
        self.sampler.temperature = value
        self._changed("temperature", value)

    def set_rhythm_temperature(self, value: float) -> None:
        """The rhythm heads' temperature (delay, timing, velocity) from the next token on."""
        self._discard_prepared()
        self.rhythm_temperature = value
        self._changed("rhythm_temperature", value)

    def set_memory(self, value: float) -> None:
        """The session memory's weight from the next token on (0 leaves it out)."""
        self._discard_prepared()
        self.memory_weight = value
        self._follow_head_memory()
        self._changed("memory", value)

    def panic(self) -> None:
        """Every note released, and held keys forgotten (their note-offs may have been lost,
        and must not block the next phrase's end). A chord still being gathered was played:
        it joins the window first, to be forgotten with the rest."""
        pending = self.listener.close_pending()
        if pending is not None:
            self._player_token(pending)
        self.listener.reset_phrase()
        self.release_all(held_keys_forgotten=True)
        self._changed("panic", True)

    @property
    def decided(self) -> bool:
        """True while a token is decided ahead of its deadline."""
        return self._prepared is not None

    def set_mode(self, mode: str) -> None:
        """Switch mode; every sounding note is released first. Raises ``ValueError`` for a bad name."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.release_all()
        self._mode = MODES[mode](self)
        self._reset_mode()
        self._changed("mode", mode)

    def silence_output(self) -> None:
        """CC 123 on the output channel (the output has just been opened): a mididuet that
        died there without its note-offs may have left notes sounding at the synth."""
        self.ledger.silence(self._out)

    def release_all(self, held_keys_forgotten: bool = False) -> None:
        """End every open note (then CC 123 per channel used) and the answer under way.
        The windows learn that mididuet's notes stopped now (and, ``held_keys_forgotten``,
        the player's still-held tokens too, whose ends will never be heard).

        Never raises, even when ``send`` does; jam and solo carry on at their next pulse.
        """
        self.ledger.release_all()
        self._notes_cut(held_keys_forgotten)
        self._mode.released()

    def feed(self, msg: mido.Message, t_ns: int) -> None:
        """Take one player message stamped ``t_ns``; call :meth:`tick` afterwards.

        Odd input (clock, sysex, stray note-offs, other channels) is ignored. Raises only
        ``OSError`` from ``send`` (thru, a cut answer), with the ledger kept consistent.
        """
        self.now_ns = max(self.now_ns, t_ns)
        if msg.type == "clock":
            if self.settings.follow_clock:
                self.pulse.clock_tick(t_ns)
            return
        channel = getattr(msg, "channel", None)
        if channel is None or (self._in is not None and channel != self._in):
            return  # system messages (sysex, active sensing, transport) and filtered channels
        for observer in self.observers:
            observer.heard(msg, t_ns)
        if msg.type == "note_on" and msg.velocity > 0:
            self._player_note_on(msg.note, msg.velocity, t_ns)
        elif msg.type in ("note_off", "note_on"):
            self.listener.note_off(msg.note, t_ns)
            self._take_lengths()
            if self.settings.thru:
                self.ledger.note_off(self._out, msg.note, owner=THRU)
        elif msg.type == "control_change":
            self._control(msg.control, msg.value, t_ns)

    def tick(self, now_ns: int) -> int | None:
        """Do everything due at ``now_ns``; return the next deadline (ns), or None.

        Raises ``OSError`` from ``send`` after keeping the ledger consistent.
        """
        self.now_ns = max(self.now_ns, now_ns)
        played = self.listener.flush(now_ns)
        if played is not None:
            self._player_token(played)
        self.ledger.release_due(now_ns)
        self._mode.tick(now_ns)
        while self._next_token_ns is not None and now_ns >= self._next_token_ns:
            self._play_due(now_ns)
        if self._prepared is None and (self.playing or self._mode.decide_early(now_ns)):
            self._prepare()
        return self._next_deadline()

    # --- what the modes call ------------------------------------------------------------

    @property
    def expressive(self) -> bool:
        """True when tokens are played as the expressive heads predict."""
        return self.encoding is not None

    def regrid_first_onset(self, anchor_ns: int) -> None:
        """Jam: a performance's first token, not played yet, moved onto the player's grid
        from ``anchor_ns`` as the pulse now is (it was placed with the pulse known then,
        often none yet); not when it is about to play (its decision is kept then)."""
        first = self._next_token_ns
        if self.playing and self._onset_fixed and first is not None and first - self.now_ns > KEEP_DECIDED_NS:
            self._next_token_ns = snap_to_grid(first, anchor_ns, self.pulse_ns(self.now_ns), self.now_ns)

    def start(self, first_ns: int) -> None:
        """Start a performance whose first token is due at ``first_ns``."""
        self.playing = True
        self._next_token_ns = first_ns
        self._onset_fixed = True
        if self.stats is not None:
            self.stats.answers += 1

    def stop(self, release: bool) -> None:
        """End the performance under way; ``release``: end its sounding notes now too (and
        the windows learn that they stopped, as at a panic)."""
        if release:
            self.ledger.release_owner(ANSWER)
            self._notes_cut()
        self._settle_own_note()
        self.playing = False
        self._next_token_ns = None
        self._onset_fixed = False
        self._own_onset = None
        self._discard_prepared()
        self._mode.stopped()

    def pulse_ns(self, now_ns: int) -> int:
        return self.pulse.pulse_ns(now_ns, self.listener.median_ioi_ns())

    # --- listening ------------------------------------------------------------------

    def _player_note_on(self, note: int, velocity: int, t_ns: int) -> None:
        if self.stats is not None:
            self.stats.notes_in += 1
        self._mode.note_on()
        played = self.listener.note_on(note, velocity, t_ns)
        if played is not None:
            self._player_token(played)
        if self.settings.thru:
            self.ledger.note_on(self._out, note, velocity, THRU)

    def _player_token(self, played: PlayedToken) -> None:
        token_id = self.window.token_id(played.token)
        if token_id is not None:  # a token the model does not know is dropped, as in training
            # The lengths of the tokens before first: whether the last had stopped as this began.
            ended = self.listener.take_ended()
            self._set_lengths(e for e in ended if e[0] != played.onset_ns)
            self.window.push_played(token_id, played.onset_ns, played.velocity, played.pitches[0],
                                    played.pitches[-1], len(played.pitches))
            self._remember(token_id, self.window.features[-1])
            self._set_lengths(e for e in ended if e[0] == played.onset_ns)
        due = self._next_token_ns
        if due is None or due - self.now_ns > KEEP_DECIDED_NS:
            self._discard_prepared()  # the window changed: decide again from it
        self._mode.token(played)

    def _remember(self, token_id: int, features: Any) -> None:
        """A token enters the session memory, with the classes its features know; the
        memory's part of the next decision is worked out now, before that decision."""
        self.memory.observe(token_id)
        self.memory.prime(self.memory_weight)
        for name, memory in self.head_memory.items():
            value = int(features[FEATURES.index(name)])
            if value > 0 and name != "length":  # the length feature is the previous token's
                memory.observe(value - 1)
                memory.prime(self.memory_weight)
        self._follow_head_memory()

    def _remember_length(self, length_class: int | None) -> None:
        memory = self.head_memory.get("length")
        if memory is not None and length_class is not None:
            memory.observe(length_class)
            memory.prime(self.memory_weight)
            self._follow_head_memory()

    def _follow_head_memory(self) -> None:
        if self.head_sampler is not None:
            self.head_sampler.follow(self.head_memory, self.memory_weight)

    def _take_lengths(self) -> None:
        """The player's tokens whose notes have stopped: their lengths join the window."""
        self._set_lengths(self.listener.take_ended())

    def _set_lengths(self, ended: Iterable[tuple[int, int]]) -> None:
        for onset, length in ended:
            self._remember_length(self.window.set_length(onset, length))

    def _control(self, control: int, value: int, t_ns: int) -> None:
        s = self.settings
        # Only our own controls change what the next token should be: the mod wheel,
        # volume or expression must not throw away the token decided ahead of its deadline.
        if control == SUSTAIN:
            self.listener.pedal(value, t_ns)
            self._take_lengths()
        elif control == s.cc_temperature:
            self.set_temperature(temperature_for_cc(value))
        elif control == s.cc_mode:
            mode = mode_for_cc(value)
            if mode != self.mode:
                self.set_mode(mode)
        elif control == s.cc_mute:
            self.mute = value >= SWITCH_ON
        elif control == s.cc_panic:
            self.panic()
        elif control == s.cc_rhythm:
            self.set_rhythm_temperature(temperature_for_cc(value))
        elif control == s.cc_memory:
            self.set_memory(memory_for_cc(value))

    # --- playing --------------------------------------------------------------------

    def _reset_mode(self, lead_ns: int = FIRST_TOKEN_LEAD_NS) -> None:
        self.stop(release=False)
        self._mode.enter(lead_ns)

    def _play_due(self, now_ns: int) -> None:
        scheduled = self._next_token_ns
        assert scheduled is not None
        pulse = self.pulse_ns(now_ns)
        if not self._mode.may_play(now_ns, pulse):
            self.stop(release=False)
            return
        self._play_token(scheduled, now_ns, pulse)
        self._onset_fixed = False
        if not self._mode.after_token():
            self.stop(release=False)  # scheduled note-offs still end the last notes
            return
        if self.expressive:
            self._next_token_ns = None  # set when the next token is decided, right after
            return
        following = scheduled + pulse
        # Far behind (a stalled machine): skip the missed beats rather than rush them out.
        self._next_token_ns = following if following > now_ns else now_ns + pulse

    def _prepare(self) -> None:
        """Decide the next token from the window as it is now (query + sample) and, when
        expressive, how to play it, and so (after a performance's first token) when."""
        stats = self.stats
        started = stats.clock() if stats is not None else 0
        window = self._mode.window()
        weight = self.memory_weight
        if self.encoding is None:
            probs = self.memory.mixed(self.model.query(window.ids), weight)
            self._prepared = Decision(self.sampler.sample(probs, window.ids))
        else:
            prediction = self.model.predict(window.ids, window.features)
            token_id = self.sampler.sample(self.memory.mixed(prediction.probs, weight), window.ids)
            assert self.head_sampler is not None
            classes = self.head_sampler.sample(prediction, token_id, self.sampler, self.head_memory, weight,
                                               self.rhythm_temperature)
            self._prepared = Decision(token_id, classes, self.head_sampler.drawn_from("length"))
            if self.playing and not self._onset_fixed:
                self._next_token_ns = self._expressive_onset(window, classes)
                self._hold_own_note(self._next_token_ns, window)
        self._prepare_ns = stats.clock() - started if stats is not None else 0
        for observer in self.observers:
            observer.decided(self._vocabulary[self._prepared.token_id], self._next_token_ns, self.now_ns)

    def _hold_own_note(self, next_onset_ns: int, window: Window) -> None:
        """The next onset is decided: mididuet's last note, if drawn to stop before it, is
        drawn again from the lengths that reach it (:func:`..play.rhythm.reaching`). A
        decision made again (the first discarded) starts again from the first draw."""
        own = self._own_note
        encoding = self.encoding
        if own is None or encoding is None or not self.settings.legato:
            return
        # One draw whether or not it is needed: how late a note was played, which can decide
        # whether it falls short, must not shift the draws after it (a simulated duet and a
        # live one play the same).
        u = None if self.sampler.method == "greedy" else float(self.sampler.rng.random())
        length = reaching(own.drawn_ns, next_onset_ns - own.onset_ns, self._length_ratios, own.unit_ns,
                          own.lengths, u)
        if length == own.length_ns:
            return
        moved = [self.ledger.reschedule(self._out, note, own.onset_ns + length, ANSWER) for note in own.notes]
        if any(moved):  # none: its notes have stopped already (a decision made again, late), as they were
            own.length_ns = length
            window.set_length(own.onset_ns, length, own=True)

    def _notes_cut(self, held_keys_forgotten: bool = False) -> None:
        """mididuet's notes were just released: the windows learn that they stopped now
        (and, ``held_keys_forgotten``, the player's held tokens too), and its last note
        joins the session memory with the length it sounded, not the one it was drawn with."""
        for window in (self.window, self._mode.window()):  # the same one twice changes nothing more
            window.stopped_sounding(self.now_ns, unknown_too=held_keys_forgotten)
        own = self._own_note
        if own is not None and own.onset_ns + own.length_ns > self.now_ns:
            own.length_ns = max(self.now_ns - own.onset_ns, 0)

    def _settle_own_note(self) -> None:
        """mididuet's last note can change no more (the next one is played, or the
        performance ends): its length joins the session memory."""
        own, self._own_note = self._own_note, None
        if own is not None and self.encoding is not None:
            self._remember_length(own.drawn_class if own.length_ns == own.drawn_ns
                                  else self.encoding.length_class(own.length_ns, own.unit_ns))

    def _rhythm_pulse(self, window: Window) -> int:
        """The unit of the predicted delays and lengths: a fixed BPM or the MIDI clock when
        asked for; in jam the player's pulse (its grid is shared); else the pulse of the
        window, the tokens just played, the player's and mididuet's own (as in training)."""
        now = self.now_ns
        if self.settings.bpm is not None or (self.settings.follow_clock and self.pulse.clock_ns(now)):
            return self.pulse_ns(now)
        pulse = None if self._mode.on_player_grid else window.pulse_ns()
        return clamp_unit(pulse) if pulse else self.pulse_ns(now)

    def _expressive_onset(self, window: Window, classes: dict[str, int]) -> int:
        """The next token's onset: its delay after mididuet's own last token (in jam and solo
        the player's tokens between do not hold mididuet's voice back), as far off the grid
        as its timing says; in jam, on the player's grid."""
        encoding = self.encoding
        assert encoding is not None
        previous = self._own_onset if self._own_onset is not None else self.now_ns
        pulse = self._rhythm_pulse(window)
        timing = encoding.timing[classes["timing"]] if "timing" in classes else 1.0
        onset = onset_after(previous, encoding.delay[classes["delay"]] * timing, pulse, self.now_ns)
        anchor = self.listener.last_onset_ns
        if self._mode.on_player_grid and anchor is not None:
            onset = snap_to_grid(onset, anchor, self.pulse_ns(self.now_ns), max(previous, self.now_ns))
        return onset

    def _play_token(self, scheduled: int, now_ns: int, pulse: int) -> None:
        stats = self.stats
        started = stats.clock() if stats is not None else now_ns
        if self._prepared is None:  # nothing decided ahead (the first token, or just invalidated)
            self._prepare()
        decision, decided_ns = self._prepared, self._prepare_ns
        assert decision is not None
        self._prepared = None
        token_id = decision.token_id
        token = self._vocabulary[token_id]
        window = self._mode.window()
        notes, velocity, length, unit = self._rendering(token, decision, window, pulse)
        off_at = max(scheduled, now_ns) + length
        sent_at: list[int] = []
        try:
            for note in notes:
                self.ledger.note_on(self._out, note, velocity, ANSWER, off_at)
                if stats is not None:
                    sent_at.append(stats.clock())
        finally:  # this token's draws are spent, even if a send failed
            self._rng_mark = self.sampler.rng.bit_generator.state
            # Counted once a chord's notes are all out, so that counting one does not hold
            # back the next. Decision time counts the whole chain (window -> model -> sampler
            # -> message), though the model's part ran ahead of the deadline.
            if stats is not None:
                for sent in sent_at:
                    stats.note_sent(decided_ns + (sent - started), sent - scheduled)
        # The notes first, the bookkeeping after: the window is next read when deciding ahead.
        self._settle_own_note()
        # Still True here for a performance's first token, whose onset its mode fixed.
        after_a_pause = self._onset_fixed and self._mode.starts_after_a_pause
        window.push_played(token_id, scheduled, velocity, notes[0], notes[-1], len(notes), length, after_a_pause)
        self._remember(token_id, window.features[-1])
        if decision.lengths is not None and decision.classes is not None:
            self._own_note = OwnNote(scheduled, notes, length, decision.classes["length"], length, unit,
                                     decision.lengths)
        self._own_onset = scheduled
        for observer in self.observers:
            observer.played(token, now_ns)

    def _rendering(self, token: str, decision: Decision, window: Window,
                   pulse: int) -> tuple[list[int], int, int, int]:
        """The notes, velocity and length (ns) to play a decided token with, and the unit
        (ns) its length is in: ``pulse``, or expressive, the rhythm's (:meth:`_rhythm_pulse`)."""
        fixed = self.settings.velocity
        classes, encoding = decision.classes, self.encoding
        if classes is None or encoding is None:
            register = self.listener.register()
            notes = voice(token, MIDDLE_C if register is None else register)
            return notes, velocity_for(fixed, self.listener.median_velocity()), int(pulse * NOTE_LENGTH), pulse
        if is_chord(token):
            notes = voice_chord(token, encoding.octave[classes["octave"]], encoding.bass[classes["bass"]],
                                encoding.spread[classes["spread"]], encoding.doubled[classes["doubled"]])
        else:
            notes = voice(token, MIDDLE_C)  # a single note keeps its own octave
        level = window.level()
        velocity = velocity_for(fixed, level if level is not None else self.listener.median_velocity(),
                                encoding.velocity[classes["velocity"]])
        unit = self._rhythm_pulse(window)
        return notes, velocity, note_length_ns(encoding.length[classes["length"]], unit), unit

    def _discard_prepared(self) -> None:
        """Drop the token decided ahead and give its random draw back, so that how often a
        decision was made and dropped (a matter of timing) does not change the tokens that
        play: a simulated duet and a real one must agree. An expressive token's time goes
        with it (it is decided again, with the token)."""
        if self._prepared is not None:
            self.sampler.rng.bit_generator.state = self._rng_mark
            if self.expressive and self.playing and not self._onset_fixed:
                self._next_token_ns = None
        self._prepared = None

    def _next_deadline(self) -> int | None:
        deadlines = [self.listener.pending_deadline, self.ledger.next_due, self._next_token_ns,
                     *self._mode.deadlines()]
        present = [d for d in deadlines if d is not None]
        return min(present) if present else None

    def _changed(self, what: str, value: object) -> None:
        for observer in self.observers:
            observer.changed(what, value, self.now_ns)

    def _send(self, msg: mido.Message) -> None:
        self._send_port(msg)
        for observer in self.observers:
            observer.sent(msg, self.now_ns)
