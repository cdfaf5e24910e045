"""Listener: chord windows, held keys and pedal, and what it learns about the player."""

from __future__ import annotations

from mididuet.daemon.listen.listener import MAX_PULSE_IOI_NS, Listener

MS = 1_000_000


def test_notes_within_the_chord_window_make_one_chord_token() -> None:
    listener = Listener(40 * MS)
    assert listener.note_on(60, 80, 0) is None
    assert listener.note_on(64, 80, 15 * MS) is None
    assert listener.note_on(67, 80, 39 * MS) is None
    assert listener.pending_deadline == 40 * MS
    assert listener.flush(39 * MS) is None  # the window is still open
    played = listener.flush(40 * MS)
    assert played is not None
    assert played.token == "0.4.7"
    assert played.onset_ns == 0
    assert played.pitches == (60, 64, 67)
    assert listener.pending_deadline is None


def test_a_note_after_the_window_closes_the_previous_token() -> None:
    listener = Listener(40 * MS)
    listener.note_on(60, 80, 0)
    played = listener.note_on(62, 80, 41 * MS)
    assert played is not None and played.token == "C4"
    assert listener.flush(81 * MS).token == "D4"


def test_zero_window_makes_every_onset_its_own_token_except_simultaneous_ones() -> None:
    listener = Listener(0)
    listener.note_on(60, 80, 5)
    listener.note_on(67, 80, 5)
    assert listener.note_on(64, 80, 6).token == "7.0"  # normal order: the fifth packs as 7-0


def test_held_keys_and_pedal_keep_the_listener_busy() -> None:
    listener = Listener(40 * MS)
    listener.note_on(60, 80, 0)
    listener.flush(40 * MS)
    assert listener.busy()
    listener.pedal(127, 50 * MS)
    listener.note_off(60, 60 * MS)
    assert listener.busy()  # the pedal still holds the sound
    listener.pedal(0, 70 * MS)
    assert not listener.busy()
    assert listener.last_activity_ns == 70 * MS


def test_a_stray_note_off_is_harmless() -> None:
    listener = Listener(40 * MS)
    listener.note_off(99, 5)
    assert not listener.busy()


def test_tempo_velocity_and_register_follow_the_player() -> None:
    listener = Listener(40 * MS)
    assert listener.median_ioi_ns() is None
    assert listener.median_velocity() is None
    assert listener.register() is None
    onsets = [0, 400, 800, 1200, 5000, 5400]  # 3.8 s is a pause between phrases, not the pulse
    for i, onset in enumerate(onsets):
        listener.note_on(48 + 2 * i, 60 + i, onset * MS)
    listener.flush(6000 * MS)
    assert listener.median_ioi_ns() == 400 * MS
    assert 3800 * MS > MAX_PULSE_IOI_NS
    assert listener.median_velocity() == 62  # median of 60..65, rounded down
    assert listener.register() == 53


def test_reset_phrase_forgets_stuck_keys() -> None:
    listener = Listener(40 * MS)
    listener.note_on(60, 80, 0)
    listener.pedal(100, 1)
    listener.flush(40 * MS)
    listener.reset_phrase()
    assert not listener.busy()


def test_a_key_struck_again_within_the_chord_window_has_not_ended() -> None:
    """Up and down again before its chord closes, the token still sounds: its first
    release is not its end (the window would read it as stopped, the length memory count
    it twice)."""
    listener = Listener(40 * MS)
    listener.note_on(60, 80, 0)
    listener.note_off(60, 10 * MS)
    listener.note_on(60, 80, 20 * MS)
    assert listener.flush(40 * MS).token == "C4"
    assert listener.take_ended() == []
    listener.note_off(60, 500 * MS)
    assert listener.take_ended() == [(0, 500 * MS)]


def test_a_chord_being_gathered_can_be_closed_at_once() -> None:
    listener = Listener(40 * MS)
    assert listener.close_pending() is None
    listener.note_on(60, 80, 0)
    listener.note_on(64, 80, 5 * MS)
    played = listener.close_pending()
    assert played is not None and played.token == "0.4" and played.onset_ns == 0
    assert listener.pending_deadline is None and listener.close_pending() is None
