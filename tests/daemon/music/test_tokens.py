"""Token spelling and chord normal order, checked against music21 itself."""

import itertools

import pytest

from mididuet.daemon.music.tokens import (
    chord_token,
    is_chord,
    normal_order,
    note_name,
    parse_note_name,
    token_pitch_classes,
    token_pitches,
    transpose_token,
)


@pytest.mark.parametrize(("midi", "name"), [(60, "C4"), (63, "E-4"), (70, "B-4"), (58, "B-3"), (61, "C#4"),
                                            (21, "A0"), (108, "C8"), (0, "C-1"), (127, "G9")])
def test_note_names_follow_music21_spelling(midi, name):
    assert note_name(midi) == name
    assert parse_note_name(name) == midi


def test_every_note_name_round_trips():
    # Below octave 0, E and B in octave -1 spell "E-1"/"B-1", which music21 itself reads as
    # E-flat 1 and B-flat 1; those notes (4 and 11) are far below the piano and never occur.
    unambiguous = range(12, 128)
    assert [parse_note_name(note_name(m)) for m in unambiguous] == list(unambiguous)


@pytest.mark.parametrize("bad", ["H4", "C", "4", "C#", "E-x", "", "C99"])
def test_bad_note_names_are_refused(bad):
    with pytest.raises(ValueError, match="note token"):
        parse_note_name(bad)


def test_normal_order_matches_music21_for_all_4095_pitch_class_sets():
    music21 = pytest.importorskip("music21")
    pitches = [music21.pitch.Pitch(ps=60 + pc) for pc in range(12)]
    mismatches = []
    for size in range(1, 13):
        for pcs in itertools.combinations(range(12), size):
            expected = tuple(music21.chord.Chord([pitches[pc] for pc in pcs]).normalOrder)
            if normal_order(pcs) != expected:
                mismatches.append((pcs, expected, normal_order(pcs)))
    assert mismatches == []
    assert sum(1 for s in range(1, 13) for _ in itertools.combinations(range(12), s)) == 4095


def test_chord_tokens_from_the_design():
    assert chord_token([60, 64, 67]) == "0.4.7"
    assert chord_token([62, 65, 69, 72]) == "9.0.2.5"
    assert chord_token([48, 60]) == "0"  # an octave doubling collapses to one pitch class
    assert chord_token([63]) == "E-4"
    assert chord_token([64, 64]) == "E4"


def test_token_pitches_voice_chords_near_the_register_and_keep_note_octaves():
    assert token_pitches("C4") == [60]
    assert token_pitches("0.4.7", register=60) == [60, 64, 67]
    low = token_pitches("0.4.7", register=40)
    assert low == [36, 40, 43]
    assert [p % 12 for p in token_pitches("9.0.2.5", register=72)] == [9, 0, 2, 5]
    for register in (0, 21, 60, 108, 127):
        for token in ("0.4.7", "11.2.5.8", "0.1.2.3.4.5.6.7.8.9.10.11"):
            notes = token_pitches(token, register)
            assert all(21 <= n <= 108 for n in notes), (token, register, notes)
            assert notes == sorted(notes)


def test_transposition_re_derives_normal_order():
    assert transpose_token("C4", 2) == "D4"
    assert transpose_token("A0", -1) is None  # pushed below the piano
    assert transpose_token("0.4.7", 2) == "2.6.9"
    # 11.2.5 (a diminished triad on B) up one semitone wraps to 0.3.6, not "12.3.6".
    assert transpose_token("11.2.5", 1) == "0.3.6"
    assert is_chord("0") and not is_chord("C4")
    assert token_pitch_classes("9.0.2.5") == (9, 0, 2, 5)
