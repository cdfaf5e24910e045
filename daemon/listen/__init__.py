"""Listen: the player's input, from rtmidi's thread to tokens: the bounded intake, the byte
parser, and the listener that groups notes into chords and follows the player."""
