"""Speech from text for the synthetic corpus: eSpeak NG with a voice of its own per speaker.

The engine is libespeak-ng 1.52 with its voice data, shipped inside the ``espeakng-loader``
wheel, so a plain ``pip install`` puts it on a machine with no system package. eSpeak NG is
GPL-3.0-or-later: speech2face calls the shared library at run time (ctypes) and ships none
of it. Every speaker gets a *variant* file of its own (the engine's mechanism for voices):
its base pitch and intonation range, a vocal-tract length as a scale of every formant's
frequency, roughness, and optionally the engine's Klatt synthesiser instead of
its default one (breathiness, which the engine's variants do not change audibly, is added by
the corpus), so that 320 speakers are 320 voices rather than a dozen presets. The
speaking rate is set per utterance.

The same voice saying the same text gives the same samples in any process and after anything
else it said. The library keeps state from one utterance to the next in its globals (its
synthesisers' filters and phases among them), so every utterance is spoken by a fresh load of
the library: each :class:`Espeak` copies the shared library once into its private folder and
loads, starts, uses and unloads that copy per utterance (about a millisecond). The engine's
noise is seeded per utterance, and its pitch flutter is off.
"""

from __future__ import annotations

import _ctypes
import atexit
import ctypes
import hashlib
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from speech2face.errors import S2FError

__all__ = [
    "ENGINE_RATE",
    "Espeak",
    "SpeechEngineError",
    "VoiceSpec",
    "engine",
    "load_sentences",
]

ENGINE_RATE = 22_050  # Hz: libespeak-ng's output rate
DEFAULT_WPM = 175  # the engine's default speaking rate, words per minute
MIN_WPM, MAX_WPM = 80, 450  # the engine's accepted range
NUM_FORMANTS = 9  # formant lines of a variant file (0-8)
MAX_ROUGHNESS = 7  # the engine's roughness scale is 0-7
MEDIAN_IN_RANGE = 0.68  # the engine's median pitch sits this far from base to top of range

# libespeak-ng's C API (speak_lib.h)
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_PARAM_RATE = 1
_EE_OK = 0

_SENTENCES = Path(__file__).with_name("sentences.txt")


class SpeechEngineError(S2FError, RuntimeError):
    """The speech engine is missing, cannot start, or refused a voice or a text."""


@dataclass(frozen=True)
class VoiceSpec:
    """One speaker's voice for the engine.

    ``language`` is an eSpeak NG voice name (``en-us``, ``en-gb-x-rp``, ``en-029``...);
    ``formant_scale`` multiplies every formant frequency of the engine's default (adult
    male) voice: 17.5 cm over the speaker's vocal-tract length.
    """

    language: str
    pitch_hz: float  # the voice's median pitch
    pitch_range_hz: float  # width of its intonation, Hz
    formant_scale: float
    roughness: float  # 0..1, irregular voicing (creak)
    words_per_minute: int
    klatt: int = 0  # 0: the engine's own synthesiser; 1-6: its Klatt synthesiser's variants

    def variant(self) -> str:
        """The text of the engine's variant file for this voice."""
        base = max(40.0, self.pitch_hz - MEDIAN_IN_RANGE * self.pitch_range_hz)
        top = base + max(self.pitch_range_hz, 1.0)
        scale = int(round(100 * self.formant_scale))
        lines = ["language variant", "name speech2face", f"pitch {int(base)} {int(top)}"]
        # Formant 0 is the voicing bar below F1: it moves with the tract, its height does not.
        lines += [f"formant {i} {scale} 100 100" for i in range(NUM_FORMANTS)]
        lines.append(f"roughness {int(round(MAX_ROUGHNESS * min(max(self.roughness, 0), 1)))}")
        lines.append("flutter 0")  # its phase runs on across utterances: history-dependent
        if self.klatt:
            lines.append(f"klatt {int(self.klatt)}")
        return "\n".join(lines) + "\n"


_Callback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


class Espeak:
    """libespeak-ng, loaded from the ``espeakng-loader`` wheel, speaking with any
    :class:`VoiceSpec`.

    The wheel's data directory is read-only in spirit, so the engine runs on a private copy
    made of symbolic links, whose ``voices/!v`` also holds the variant of the utterance
    being spoken.
    """

    def __init__(self) -> None:
        try:
            import espeakng_loader
        except ImportError as error:
            raise SpeechEngineError(
                "the speech engine is missing: pip install espeakng-loader "
                "(or reinstall speech2face, which depends on it)"
            ) from error
        try:
            library = Path(espeakng_loader.get_library_path())
            data = Path(espeakng_loader.get_data_path())
        except Exception as error:  # the loader raises RuntimeError for a missing data dir
            raise SpeechEngineError(f"the speech engine's data is missing: {error}") from error
        if not library.is_file() or not (data / "phontab").is_file():
            raise SpeechEngineError(
                f"the speech engine is incomplete: {library} or {data}/phontab is missing"
            )
        self._root = Path(tempfile.mkdtemp(prefix="s2f-espeak-"))
        atexit.register(shutil.rmtree, self._root, True)
        self._variants = self._mirror(data, self._root / "espeak-ng-data")
        # A private copy: loading it never shares globals with another Espeak's load.
        self._library = self._root / library.name
        try:
            shutil.copyfile(library, self._library)
        except OSError as error:
            raise SpeechEngineError(f"cannot copy the speech engine {library}: {error}") from error
        self._chunks: list[np.ndarray] = []
        self._callback = _Callback(self._collect)  # kept: the library holds a pointer to it
        self._lock = threading.Lock()
        self._close(self._open())  # fails here, not at the first utterance

    def _open(self) -> ctypes.CDLL:
        """A fresh load of the library, started: none of an earlier utterance's state."""
        try:
            lib = ctypes.CDLL(str(self._library))
        except OSError as error:
            raise SpeechEngineError(
                f"cannot load the speech engine {self._library}: {error}"
            ) from error
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, str(self._root).encode(), 0)
        if rate != ENGINE_RATE:
            self._close(lib)
            raise SpeechEngineError(f"the speech engine did not start (it answered {rate})")
        lib.espeak_SetSynthCallback(self._callback)
        return lib

    @staticmethod
    def _close(lib: ctypes.CDLL) -> None:
        """Stop the engine and unload it, so that the next :meth:`_open` starts afresh."""
        lib.espeak_Terminate()
        _ctypes.dlclose(lib._handle)

    @staticmethod
    def _mirror(source: Path, target: Path) -> Path:
        """Link ``source``'s entries into ``target``; ``voices/!v`` becomes a real folder
        (links to the wheel's variants) that new variants can be written into."""
        (target / "voices" / "!v").mkdir(parents=True)
        for entry in source.iterdir():
            if entry.name != "voices":
                (target / entry.name).symlink_to(entry)
        for entry in (source / "voices").iterdir():
            if entry.name != "!v":
                (target / "voices" / entry.name).symlink_to(entry)
        for entry in (source / "voices" / "!v").iterdir():
            (target / "voices" / "!v" / entry.name).symlink_to(entry)
        return target / "voices" / "!v"

    def _collect(self, samples, count: int, _events) -> int:
        if count > 0:
            self._chunks.append(np.ctypeslib.as_array(samples, (count,)).copy())
        return 0

    def say(self, text: str, voice: VoiceSpec) -> np.ndarray:  # -> (T,) float32 at ENGINE_RATE
        """``text`` spoken in ``voice``: mono float32 in [-1, 1] at :data:`ENGINE_RATE`."""
        if not text.strip():
            raise SpeechEngineError("the speech engine was given an empty text")
        body = voice.variant()
        name = "s2f" + hashlib.sha1(body.encode()).hexdigest()[:16]
        path = self._variants / name
        with self._lock:
            # Only this utterance's variant sits beside the wheel's: each load lists every
            # voice file, and the engine keeps at most 349 (it warns past that).
            path.write_text(body)
            lib = self._open()
            try:
                if lib.espeak_SetVoiceByName(f"{voice.language}+{name}".encode()) != _EE_OK:
                    raise SpeechEngineError(f"the speech engine has no voice '{voice.language}'")
                # The engine's noise (breath, consonants) from a seed of the voice and the text.
                seed = int.from_bytes(hashlib.sha1((body + text).encode()).digest()[:4], "little")
                lib.espeak_ng_SetRandSeed(ctypes.c_long(seed))
                wpm = int(min(max(voice.words_per_minute, MIN_WPM), MAX_WPM))
                lib.espeak_SetParameter(_PARAM_RATE, wpm, 0)
                encoded = text.encode("utf-8")
                self._chunks.clear()
                buffer = ctypes.create_string_buffer(encoded)
                status = lib.espeak_Synth(
                    buffer, len(encoded) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None
                )
                lib.espeak_Synchronize()
            finally:
                self._close(lib)
                path.unlink(missing_ok=True)
            chunks, self._chunks = self._chunks, []
        if status != _EE_OK or not chunks:
            raise SpeechEngineError(f"the speech engine could not say {text[:40]!r}")
        return np.concatenate(chunks).astype(np.float32) / 32768.0


_ENGINE: tuple[int, Espeak] | None = None


def engine() -> Espeak:
    """This process's :class:`Espeak` (made on first use)."""
    global _ENGINE
    if _ENGINE is None or _ENGINE[0] != os.getpid():
        _ENGINE = (os.getpid(), Espeak())
    return _ENGINE[1]


def load_sentences(path: str | os.PathLike | None = None) -> list[str]:
    """The sentences the synthetic speakers say, one a line (``#`` lines are comments);
    by default the packaged list of public-domain texts."""
    path = Path(path) if path is not None else _SENTENCES
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise SpeechEngineError(f"cannot read the sentence list {path}: {reason}") from error
    sentences = [line.strip() for line in text.splitlines()]
    sentences = [line for line in sentences if line and not line.startswith("#")]
    if not sentences:
        raise SpeechEngineError(f"the sentence list {path} holds no sentences")
    return sentences
