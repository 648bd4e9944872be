"""Regenerate the packaged "real voices" benchmark set from installed Debian packages.

    apt-get install -y --no-install-recommends flite festival festival-hi \
        festvox-kdlpc16k festvox-italp16k festvox-itapc16k festvox-suopuhe-lj \
        festvox-suopuhe-mv festvox-czech-dita festvox-czech-machac festvox-czech-ph \
        festvox-ca-ona-hts festvox-hi-nsk festvox-ru pocketsphinx-testdata \
        asterisk-core-sounds-en-g722 asterisk-core-sounds-fr-g722 \
        asterisk-core-sounds-it-g722 asterisk-core-sounds-ru-g722 \
        asterisk-prompt-fr-armelle asterisk-prompt-es-co asterisk-prompt-it-menardi-wav \
        fillets-ng-data-cs fillets-ng-data-nl
    python scripts/make_real_voices.py            # writes speech2face/data/real_voices/

Every voice comes from an engine or a recording that the training corpus never uses (the
corpus speaks with espeak-ng): CMU Flite and Festival voices, and human recordings
(LibriVox via pocketsphinx-testdata, Asterisk telephone prompts, Fish Fillets NG dialogue).
Each file is a sentence or two, cut to :data:`EDGE_SILENCE_SECONDS` of silence at each end,
peak-normalised, resampled to 16 kHz mono and written as Ogg Opus; ``manifest.csv`` and
``README.md`` are written beside them. A missing engine, package or file is a one-line
error and exit status 2.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "speech2face" / "data" / "real_voices"
MANIFEST_COLUMNS = ("file", "gender", "language", "engine", "voice", "source", "licence")

SAMPLE_RATE = 16_000  # Hz: speech2face.audio.SAMPLE_RATE, the paper's rate
MIN_SECONDS = 4.0  # each file, silence margins included
MAX_SECONDS = 8.0
EDGE_SILENCE_SECONDS = 0.2  # silence kept (or padded) before the first and after the last word
FRAME_SECONDS = 0.02  # 20 ms frames for finding speech ...
SILENCE_DB = 40.0  # ... a frame more than 40 dB below the loudest frame is silence
PEAK = 10 ** (-1.0 / 20)  # peak-normalise to -1 dBFS, leaving Opus room to overshoot
# libsndfile maps 0.0 (best) ... 1.0 (smallest) to Opus bitrates: 0.92 gives about 26 kbit/s
# at 16 kHz mono, i.e. about 20 KB for 6 s of speech.
OPUS_COMPRESSION_LEVEL = 0.92
SUBPROCESS_TIMEOUT = 300  # seconds for one synthesis
PROG = "make_real_voices"
ASTERISK = Path("/usr/share/asterisk/sounds")
FILLETS = Path("/usr/share/games/fillets-ng/sound")
LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")


class SetupError(Exception):
    """An engine, voice, package or file this script needs is missing or fails."""


# --------------------------------------------------------------------------- sources


@dataclass(frozen=True)
class Flite:
    """Text spoken by a voice compiled into CMU Flite (``flite -voice NAME``)."""

    voice: str
    text: str


@dataclass(frozen=True)
class Festival:
    """Text spoken by a Festival voice (``text2wave -eval (voice_NAME)``), in the encoding
    the voice's language module reads."""

    voice: str
    text: str
    encoding: str = "latin-1"


@dataclass(frozen=True)
class Recording:
    """A recorded file; ``container`` names the PyAV demuxer of a headerless file (``g722``,
    ``gsm``), else soundfile reads it."""

    path: Path
    transcript: str
    container: str | None = None


Render = Flite | Festival | Recording


@dataclass(frozen=True)
class VoiceSpec:
    """One file of the set: its labels, where its voice comes from, and what it says."""

    file: str
    gender: str  # "female" | "male"
    language: str  # BCP 47 tag
    engine: str  # flite | festival | recording
    voice: str  # the underlying speaker (two files with one speaker share this)
    package: str  # the Debian package holding the voice data or the recording
    licence: str  # SPDX id where one exists (see README.md)
    render: Render
    note: str = ""  # where the text comes from


GETTYSBURG = "Abraham Lincoln, Gettysburg Address (1863), public domain"
DECLARATION = "US Declaration of Independence (1776), public domain"
SELF_WRITTEN = "written for this set"
KALEVALA = "after the Kalevala (1849), public domain"

VOICES: tuple[VoiceSpec, ...] = (
    # ------------------------------------------------------------------ female
    VoiceSpec(
        "female_en-US_flite_slt.ogg", "female", "en-US", "flite", "cmu_us_slt", "libflite1",
        "Festvox",
        Flite("slt", "We hold these truths to be self-evident, that all men are created equal, "
                     "that they are endowed by their Creator with certain unalienable Rights."),
        DECLARATION,
    ),
    VoiceSpec(
        "female_it-IT_festival_lp.ogg", "female", "it-IT", "festival", "lp_diphone",
        "festvox-italp16k", "GPL-2.0-or-later",
        Festival("lp_diphone", "Nel mezzo del cammin di nostra vita mi ritrovai per una selva "
                               "oscura, che la diritta via era smarrita."),
        "Dante, Inferno I (c. 1320), public domain",
    ),
    VoiceSpec(
        "female_fi-FI_festival_lj.ogg", "female", "fi-FI", "festival", "suo_fi_lj_diphone",
        "festvox-suopuhe-lj", "LGPL-2.0-or-later",
        Festival("suo_fi_lj_diphone", "Mieleni minun tekevi, aivoni ajattelevi lähteäni "
                                      "laulamahan, saa'ani sanelemahan."),
        "Kalevala, first lines (1849), public domain",
    ),
    VoiceSpec(
        "female_cs-CZ_festival_dita.ogg", "female", "cs-CZ", "festival", "czech_dita",
        "festvox-czech-dita", "GPL-3.0-or-later",
        Festival("czech_dita", "Byl pozdní večer, první máj, večerní máj, byl lásky čas. "
                               "Hrdliččin zval ku lásce hlas.", "iso-8859-2"),
        "Karel Hynek Mácha, Máj (1836), public domain",
    ),
    VoiceSpec(
        "female_ca-ES_festival_ona.ogg", "female", "ca-ES", "festival", "upc_ca_ona_hts",
        "festvox-ca-ona-hts", "LGPL-2.1-or-later",
        Festival("upc_ca_ona_hts", "Bon dia a tothom. Avui fa un dia molt bonic i anirem a "
                                   "passejar pel parc amb els amics.", "iso-8859-15"),
        SELF_WRITTEN,
    ),
    VoiceSpec(
        "female_en-US_asterisk_allison.ogg", "female", "en-US", "recording", "Allison Smith",
        "asterisk-core-sounds-en-g722", "CC-BY-SA-3.0",
        Recording(ASTERISK / "en_US_f_Allison" / "vm-intro.g722",
                  "Please leave your message after the tone. When done, hang up, or press "
                  "the pound key.", "g722"),
        "Asterisk prompt vm-intro",
    ),
    VoiceSpec(
        "female_fr-CA_asterisk_june.ogg", "female", "fr-CA", "recording", "June Wallack",
        "asterisk-core-sounds-fr-g722", "CC-BY-SA-3.0",
        Recording(ASTERISK / "fr_CA_f_June" / "vm-rec-busy.g722",
                  "(in French) After the tone, say your busy message, then press pound.", "g722"),
        "Asterisk prompt vm-rec-busy",
    ),
    VoiceSpec(
        "female_ru-RU_asterisk_ivrvoice.ogg", "female", "ru-RU", "recording", "ivrvoice.ru",
        "asterisk-core-sounds-ru-g722", "CC-BY-3.0",
        Recording(ASTERISK / "ru_RU_f_IvrvoiceRU" / "vm-rec-unv.g722",
                  "(in Russian) After the tone, say your unavailable message, then press "
                  "pound.", "g722"),
        "Asterisk prompt vm-rec-unv",
    ),
    VoiceSpec(
        "female_it-IT_asterisk_paola.ogg", "female", "it-IT", "recording", "Paola Dal Zot",
        "asterisk-prompt-it-menardi-wav", "CC-BY-SA-3.0",
        Recording(ASTERISK / "it_IT_f_Menardi" / "vm-intro.wav",
                  "(in Italian) Please leave your message after the tone. When done, hang up, or "
                  "press the pound key."),
        "Asterisk prompt vm-intro",
    ),
    VoiceSpec(
        "female_fr-FR_asterisk_armelle.ogg", "female", "fr-FR", "recording",
        "Armelle Desjardins", "asterisk-prompt-fr-armelle", "BSD-like",
        Recording(ASTERISK / "fr" / "vm-rec-unv.gsm",
                  "(in French) After the tone, say your unavailable message, then press "
                  "pound.", "gsm"),
        "Asterisk prompt vm-rec-unv",
    ),
    VoiceSpec(
        "female_es-CO_asterisk_july.ogg", "female", "es-CO", "recording", "July E. Jiménez",
        "asterisk-prompt-es-co", "GPL-2.0-only",
        Recording(ASTERISK / "es" / "vm-intro.gsm",
                  "(in Spanish) Please leave your message after the tone. When done, hang up, or "
                  "press the pound key.", "gsm"),
        "Asterisk prompt vm-intro",
    ),
    VoiceSpec(
        "female_cs-CZ_fillets_smallfish.ogg", "female", "cs-CZ", "recording",
        "Fish Fillets NG small fish (cs)", "fillets-ng-data-cs", "GPL-2.0-only",
        Recording(FILLETS / "floppy" / "cs" / "disk-m-zmatlo.ogg",
                  "A co když ten plán není na té disketě? Co když je tu jen proto, aby nás to "
                  "zmátlo?"),
        "Fish Fillets NG dialogue disk-m-zmatlo",
    ),
    VoiceSpec(
        "female_nl_fillets_smallfish.ogg", "female", "nl", "recording",
        "Fish Fillets NG small fish (nl)", "fillets-ng-data-nl", "GPL-2.0-only",
        Recording(FILLETS / "atlantis" / "nl" / "sp-m-kalet.ogg",
                  "En bovendien, denk je dat hier ooit iemand komt? Alleen zeekatjes zouden "
                  "er af en toe aan knabbelen."),
        "Fish Fillets NG dialogue sp-m-kalet",
    ),
    # ------------------------------------------------------------------ male
    VoiceSpec(
        "male_en-US_librivox_austen.ogg", "male", "en-US", "recording",
        "LibriVox reader, Sense and Sensibility ch. 1", "pocketsphinx-testdata", "BSD-2-Clause",
        Recording(LIBRIVOX / "sense_and_sensibility_01_austen_64kb-0870.wav",
                  "And Mister John Dashwood had then leisure to consider how much there might "
                  "be prudently in his power to do for them."),
        "Jane Austen, Sense and Sensibility (1811), LibriVox reading, public domain",
    ),
    VoiceSpec(
        "male_en-US_flite_rms.ogg", "male", "en-US", "flite", "cmu_us_rms", "libflite1",
        "Festvox",
        Flite("rms", "Four score and seven years ago our fathers brought forth on this "
                     "continent, a new nation, conceived in Liberty."),
        GETTYSBURG,
    ),
    VoiceSpec(
        "male_en-GB_flite_awb.ogg", "male", "en-GB", "flite", "cmu_us_awb", "libflite1",
        "Festvox",
        Flite("awb", "A famished fox saw some clusters of ripe black grapes hanging from a "
                     "trellised vine. She resorted to all her tricks to get at them."),
        "Aesop, The Fox and the Grapes, tr. G. F. Townsend (1867), public domain",
    ),
    VoiceSpec(
        "male_en-US_flite_kal.ogg", "male", "en-US", "flite", "cmu_us_kal", "libflite1",
        "Festvox",
        Flite("kal16", "Alice was beginning to get very tired of sitting by her sister on the "
                       "bank, and of having nothing to do."),
        "Lewis Carroll, Alice's Adventures in Wonderland (1865), public domain",
    ),
    VoiceSpec(
        "male_en-US_festival_ked.ogg", "male", "en-US", "festival", "ked_diphone",
        "festvox-kdlpc16k", "Festvox",
        Festival("ked_diphone", "The world will little note, nor long remember what we say "
                                "here, but it can never forget what they did here."),
        GETTYSBURG,
    ),
    VoiceSpec(
        "male_it-IT_festival_pc.ogg", "male", "it-IT", "festival", "pc_diphone",
        "festvox-itapc16k", "GPL-2.0-or-later",
        Festival("pc_diphone", "Quel ramo del lago di Como, che volge a mezzogiorno, tra due "
                               "catene non interrotte di monti."),
        "Alessandro Manzoni, I promessi sposi (1840), public domain",
    ),
    VoiceSpec(
        "male_fi-FI_festival_mv.ogg", "male", "fi-FI", "festival", "hy_fi_mv_diphone",
        "festvox-suopuhe-mv", "LGPL-2.0-or-later",
        Festival("hy_fi_mv_diphone", "Vaka vanha Väinämöinen, tietäjä iän ikuinen, lauloi "
                                     "virren, lauloi toisen."),
        KALEVALA,
    ),
    VoiceSpec(
        "male_cs-CZ_festival_machac.ogg", "male", "cs-CZ", "festival", "czech_machac",
        "festvox-czech-machac", "GPL-3.0-or-later",
        Festival("czech_machac", "Bylo jednou jedno malé město u velké řeky, kde lidé rádi "
                                 "zpívali a tančili.", "iso-8859-2"),
        SELF_WRITTEN,
    ),
    VoiceSpec(
        "male_cs-CZ_festival_ph.ogg", "male", "cs-CZ", "festival", "czech_ph",
        "festvox-czech-ph", "GPL-2.0-or-later",
        Festival("czech_ph", "Zítra ráno pojedeme vlakem do hor a budeme se celý den "
                             "procházet po lese.", "iso-8859-2"),
        SELF_WRITTEN,
    ),
    VoiceSpec(
        "male_hi-IN_festival_nsk.ogg", "male", "hi-IN", "festival", "hindi_NSK_diphone",
        "festvox-hi-nsk", "GPL-2.0-or-later",
        Festival("hindi_NSK_diphone", "नमस्ते, आज मौसम बहुत अच्छा है। हम सब शाम को बाग में "
                                      "घूमने जाएँगे।", "utf-8"),
        SELF_WRITTEN,
    ),
    VoiceSpec(
        "male_ru-RU_festival_nsh.ogg", "male", "ru-RU", "festival", "msu_ru_nsh_clunits",
        "festvox-ru", "Festvox",
        Festival("msu_ru_nsh_clunits", "Мой дядя самых честных правил, когда не в шутку "
                                       "занемог, он уважать себя заставил.", "utf-8"),
        "Alexander Pushkin, Eugene Onegin (1833), public domain",
    ),
    VoiceSpec(
        "male_it-IT_asterisk_carlo.ogg", "male", "it-IT", "recording", "Carlo Flora",
        "asterisk-core-sounds-it-g722", "CC-BY-3.0",
        Recording(ASTERISK / "it_IT_m_Carlo" / "vm-rec-temp.g722",
                  "(in Italian) After the tone, say your temporary greeting, then press "
                  "pound.", "g722"),
        "Asterisk prompt vm-rec-temp",
    ),
    VoiceSpec(
        "male_cs-CZ_fillets_bigfish.ogg", "male", "cs-CZ", "recording",
        "Fish Fillets NG big fish (cs)", "fillets-ng-data-cs", "GPL-2.0-only",
        Recording(FILLETS / "creatures" / "cs" / "kor-v-inteligentni.ogg",
                  "Víš o tom, že některé druhy korálů jsou skoro tak inteligentní jako ryby?"),
        "Fish Fillets NG dialogue kor-v-inteligentni",
    ),
    VoiceSpec(
        "male_nl_fillets_bigfish.ogg", "male", "nl", "recording", "Fish Fillets NG big fish (nl)",
        "fillets-ng-data-nl", "GPL-2.0-only",
        Recording(FILLETS / "atlantis" / "nl" / "sp-v-zahynuli.ogg",
                  "Duizenden zijn omgekomen, de hele stad is onder de golven verdwenen. Gewoon "
                  "door zo'n stommiteit."),
        "Fish Fillets NG dialogue sp-v-zahynuli",
    ),
)  # fmt: skip

# The engine programs each engine needs, and the Debian package that ships each.
ENGINE_PROGRAMS = {"flite": ("flite", "flite"), "festival": ("text2wave", "festival")}


# --------------------------------------------------------------------------- helpers


def _run(argv: list[str], what: str) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` (never through a shell); a failure becomes a :class:`SetupError`."""
    try:
        result = subprocess.run(
            argv, capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT, check=False
        )
    except FileNotFoundError:
        raise SetupError(f"{argv[0]} not found (needed for {what})") from None
    except subprocess.TimeoutExpired:
        raise SetupError(f"{argv[0]} timed out after {SUBPROCESS_TIMEOUT} s ({what})") from None
    if result.returncode != 0:
        detail = (result.stderr.strip().splitlines() or ["no message"])[-1]
        raise SetupError(f"{argv[0]} failed for {what}: {detail}")
    return result


def package_version(package: str) -> str:
    """The installed version of Debian ``package``; :class:`SetupError` when it is absent."""
    if shutil.which("dpkg-query") is None:
        raise SetupError("dpkg-query not found: this script reads Debian packages")
    result = subprocess.run(
        ["dpkg-query", "-W", "-f=${db:Status-Status} ${Version}", package],
        capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT, check=False,
    )  # fmt: skip
    status, _, version = result.stdout.strip().partition(" ")
    if result.returncode != 0 or status != "installed" or not version:
        raise SetupError(f"Debian package {package} is not installed (apt-get install {package})")
    return version


def _require_program(engine: str) -> None:
    """:class:`SetupError` unless the program that runs ``engine`` is on PATH."""
    program, package = ENGINE_PROGRAMS[engine]
    if shutil.which(program) is None:
        raise SetupError(f"{program} not found: install the Debian package {package}")


def _read_wav(path: Path) -> tuple[np.ndarray, int]:
    """Mono float32 samples and their rate from a file soundfile reads."""
    import soundfile as sf

    try:
        data, rate = sf.read(path, dtype="float32", always_2d=True)
    except (RuntimeError, OSError) as error:  # soundfile raises LibsndfileError(RuntimeError)
        raise SetupError(f"cannot read {path}: {error}") from None
    return data.mean(axis=1), int(rate)


def _read_raw(path: Path, container: str) -> tuple[np.ndarray, int]:
    """Mono float32 samples and their rate from a headerless file PyAV's ``container``
    demuxer reads (G.722 at 16 kHz, GSM 06.10 at 8 kHz)."""
    import av

    try:
        with av.open(str(path), format=container) as media:
            stream = media.streams.audio[0]
            rate = stream.codec_context.sample_rate or stream.rate
            frames = [frame.to_ndarray() for frame in media.decode(stream)]
    except (av.FFmpegError, OSError, IndexError) as error:
        raise SetupError(f"cannot decode {path} as {container}: {error}") from None
    if not frames:
        raise SetupError(f"{path} holds no audio")
    samples = np.concatenate([f.reshape(-1, f.shape[-1]) for f in frames], axis=1)
    samples = samples.astype(np.float32)
    if np.issubdtype(frames[0].dtype, np.integer):
        samples /= float(np.iinfo(frames[0].dtype).max) + 1.0
    return samples.mean(axis=0), int(rate)


def render(spec: VoiceSpec, workdir: Path) -> tuple[np.ndarray, int]:
    """The raw audio of one voice: synthesised into ``workdir`` or read from its recording."""
    how = spec.render
    out = workdir / f"{Path(spec.file).stem}.wav"
    if isinstance(how, Flite):
        _require_program("flite")
        voices = _run(["flite", "-lv"], "listing Flite voices").stdout.split()
        if how.voice not in voices:
            raise SetupError(f"Flite has no voice {how.voice!r} (has: {' '.join(voices[2:])})")
        _run(["flite", "-voice", how.voice, "-t", how.text, "-o", str(out)], spec.file)
    elif isinstance(how, Festival):
        _require_program("festival")
        text = workdir / f"{Path(spec.file).stem}.txt"
        text.write_bytes(how.text.encode(how.encoding))
        result = _run(
            ["text2wave", "-o", str(out), "-eval", f"(voice_{how.voice})", str(text)], spec.file
        )
        if "SIOD ERROR" in result.stderr + result.stdout:
            lines = [line.strip() for line in (result.stderr + result.stdout).splitlines()]
            detail = next((line for line in lines if "SIOD ERROR" in line), "SIOD ERROR")
            raise SetupError(f"Festival voice {how.voice} failed for {spec.file}: {detail}")
    else:
        if not how.path.is_file():
            raise SetupError(f"recording {how.path} not found (package {spec.package})")
        if how.container is None:
            return _read_wav(how.path)
        return _read_raw(how.path, how.container)
    if not out.is_file() or out.stat().st_size == 0:
        raise SetupError(f"{spec.engine} wrote no audio for {spec.file}")
    return _read_wav(out)


def to_16k(samples: np.ndarray, rate: int) -> np.ndarray:
    """``samples`` resampled to :data:`SAMPLE_RATE` with the project's band-limited resampler."""
    import torch

    from speech2face.audio import resample

    wav = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))
    return resample(wav, rate, SAMPLE_RATE).numpy()


def trim(samples: np.ndarray, rate: int = SAMPLE_RATE) -> np.ndarray:
    """Speech with :data:`EDGE_SILENCE_SECONDS` of silence at each end (cut, or zero-padded
    when the source has less); a frame is speech within :data:`SILENCE_DB` of the loudest."""
    frame = round(FRAME_SECONDS * rate)
    count = len(samples) // frame
    if count == 0:
        raise SetupError("audio shorter than one frame")
    rms = np.sqrt(np.mean(samples[: count * frame].reshape(count, frame) ** 2, axis=1))
    loud = np.flatnonzero(rms > rms.max() * 10 ** (-SILENCE_DB / 20))
    start, stop = loud[0] * frame, (loud[-1] + 1) * frame
    margin = round(EDGE_SILENCE_SECONDS * rate)
    speech = samples[max(0, start - margin) : min(len(samples), stop + margin)]
    before = margin - min(margin, start)
    after = margin - min(margin, len(samples) - stop)
    return np.pad(speech, (before, after))


def write_opus(samples: np.ndarray, path: Path) -> None:
    """Peak-normalised ``samples`` (16 kHz mono) as Ogg Opus at ``path``."""
    import soundfile as sf

    peak = float(np.abs(samples).max())
    if peak == 0.0:
        raise SetupError(f"{path.name}: the audio is silent")
    sf.write(
        path, samples * (PEAK / peak), SAMPLE_RATE, format="OGG", subtype="OPUS",
        compression_level=OPUS_COMPRESSION_LEVEL,
    )  # fmt: skip


def make_one(spec: VoiceSpec, out_dir: Path, workdir: Path) -> float:
    """Write one file of the set; returns its duration in seconds."""
    from speech2face.audio import load_audio

    samples, rate = render(spec, workdir)
    samples = trim(to_16k(samples, rate))
    seconds = len(samples) / SAMPLE_RATE
    if not MIN_SECONDS <= seconds <= MAX_SECONDS:
        raise SetupError(
            f"{spec.file} is {seconds:.2f} s long, outside {MIN_SECONDS}-{MAX_SECONDS} s: "
            "change its text or recording"
        )
    path = out_dir / spec.file
    write_opus(samples, path)
    decoded = load_audio(path)
    if abs(decoded.shape[-1] - len(samples)) > SAMPLE_RATE // 10:
        raise SetupError(f"{spec.file} reads back as {decoded.shape[-1]} samples")
    return seconds


# --------------------------------------------------------------------------- outputs


def write_manifest(out_dir: Path, versions: dict[str, str]) -> None:
    """``out_dir/manifest.csv``: one row per voice, :data:`MANIFEST_COLUMNS`."""
    with open(out_dir / "manifest.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(MANIFEST_COLUMNS)
        for spec in VOICES:
            source = f"{spec.package} {versions[spec.package]}"
            writer.writerow(
                [spec.file, spec.gender, spec.language, spec.engine, spec.voice, source,
                 spec.licence]
            )  # fmt: skip


def _said(spec: VoiceSpec) -> str:
    how = spec.render
    text = how.transcript if isinstance(how, Recording) else how.text
    return text.replace("|", "/")


def _how(spec: VoiceSpec) -> str:
    how = spec.render
    if isinstance(how, Flite):
        return f"`flite -voice {how.voice}`"
    if isinstance(how, Festival):
        return f"`text2wave -eval '(voice_{how.voice})'`"
    return f"`{how.path}`"


README_HEAD = """\
# Real voices: a held-out gender benchmark set

{count} short clips, one voice each ({female} female, {male} male; {languages} languages,
{tags} language or accent tags), for checking a voice model on speech it was never trained
on. The training corpus (`speech2face.data.synthetic`) speaks only with espeak-ng; **none of
these engines, voices or recordings is used in training**: they come from CMU Flite,
Festival (diphone, cluster-unit and HTS voices) and human recordings (a LibriVox reading,
Asterisk telephone prompts, Fish Fillets NG game dialogue), all from Debian packages.

Load them with `speech2face.data.real_voices.load_real_voices()`; `manifest.csv` has the
columns `file,gender,language,engine,voice,source,licence` (`source`: the Debian package
and version the voice data came from; `voice`: the underlying speaker, so two files of
one speaker would share it; every speaker here appears once).

## Regenerating

Install the Debian packages named in the `source` column (plus `flite`, `festival` and
`festival-hi` for the engines), then run

    python scripts/make_real_voices.py

It synthesises or reads each clip, resamples it to 16 kHz mono, trims it to {edge} s of
silence at each end, peak-normalises it to -1 dBFS and writes it as Ogg Opus (libsndfile
compression level {level}). Those steps are the only modifications made to the voices and
recordings (several licences below ask for modifications to be marked: this is the mark).
Regenerated files decode to the same samples; their bytes differ only in the Ogg stream's
serial number, which libsndfile draws at random.

## Files
"""

README_LICENCES = """\

## Licences

Each file keeps the licence of the voice data or recording it comes from (see
`/usr/share/doc/<package>/copyright` on a Debian system); they are data shipped beside the
MIT-licensed code, not under MIT.

- **Festvox**: the CMU / Edinburgh permissive voice licence (free use, modification and
  redistribution provided the copyright notice is kept, modifications are marked, authors'
  names are not deleted or used for endorsement). CMU Flite's voices (Copyright 1999-2001
  Language Technologies Institute, Carnegie Mellon University), `festvox-kdlpc16k`
  (Copyright 1997 CSTR, University of Edinburgh) and `festvox-ru` (Copyright 2005
  Nickolay V. Shmyrev, called "BSD-like" in its copyright file).
- **BSD-like**: `asterisk-prompt-fr-armelle` (voice Armelle Desjardins, Copyright 2006
  Michel Gutierrez): redistribution with or without modification, keeping the notice; no
  endorsement.
- **BSD-2-Clause**: `pocketsphinx-testdata` (Copyright Carnegie Mellon University); the
  LibriVox reading it contains is itself in the public domain.
- **CC-BY-SA-3.0**: Asterisk core sounds by Allison Smith (en, Copyright 2003-2010) and
  June Wallack (fr-CA, Copyright 2006-2008); the Italian prompts of Marco Menardi and
  Paola Dal Zot (voice), Copyright 2006-2011. **CC-BY-3.0**: Asterisk core sounds ru
  (Copyright 2010 Maxim Topal, ivrvoice.ru) and it (Copyright 2012 Carlo Flora).
- **GPL-2.0-only**: `asterisk-prompt-es-co` (Copyright 2006 Avatar Ltda., voice July E.
  Jiménez); Fish Fillets NG (`fillets-ng-data-cs`, `-nl`; Copyright Ivo and Pavel
  Danihelka, ALTAR interactive and translators).
- **GPL-2.0-or-later**: Italian Festival voices (IFM, ISTC-SPFD CNR and ITC-irst),
  `festvox-czech-ph` (Brailcom), `festvox-hi-nsk` (C-DAC Mumbai).
  **GPL-3.0-or-later**: `festvox-czech-dita`, `festvox-czech-machac` (Brailcom).
- **LGPL-2.0-or-later**: Suopuhe Finnish voices (University of Helsinki and University of
  Joensuu). **LGPL-2.1-or-later**: `festvox-ca-ona-hts` (Universitat Politècnica de
  Catalunya).

## Genders

Each gender comes from the package, not from listening or pitch: the Festival package
descriptions ("Italian female speaker", "Czech adult male speaker", ...); CMU's voice notes
for Flite (slt female; rms, awb, kal male); the Asterisk sound folders
(`en_US_f_Allison`, `fr_CA_f_June`, `ru_RU_f_IvrvoiceRU`, `it_IT_f_Menardi`,
`it_IT_m_Carlo`) and the credited voice actors (Armelle Desjardins, July E. Jiménez, Paola
Dal Zot); the LibriVox reader of Sense and Sensibility, chapter 1 (a male reader, not
named by the package); and Fish Fillets NG's two heroes, the small fish (female: her Czech
lines use feminine forms, "mohla bych") and the big fish (male). `tests/data/test_real_voices.py`
cross-checks the labels against each clip's median pitch (pYIN): on average the female
clips are higher.

The flite `slt` voice and the Festival voice `cmu_us_slt_arctic_hts` are one speaker
(CMU ARCTIC slt), as are flite `kal16` and Festival `kal_diphone`, and Asterisk's English
and Mexican Spanish prompts (both Allison Smith); each such speaker appears here once.
"""


def write_readme(out_dir: Path, versions: dict[str, str], seconds: dict[str, float]) -> None:
    female = sum(spec.gender == "female" for spec in VOICES)
    lines = [
        README_HEAD.format(
            count=len(VOICES),
            female=female,
            male=len(VOICES) - female,
            languages=len({spec.language.split("-")[0] for spec in VOICES}),
            tags=len({spec.language for spec in VOICES}),
            edge=EDGE_SILENCE_SECONDS,
            level=OPUS_COMPRESSION_LEVEL,
        ),  # fmt: skip
        "| file | gender | language | voice | seconds | source | licence | text (origin) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for spec in VOICES:
        lines.append(
            f"| {spec.file} | {spec.gender} | {spec.language} | {spec.engine}: {spec.voice}, "
            f"{_how(spec)} | {seconds[spec.file]:.1f} | {spec.package} "
            f"{versions[spec.package]} | {spec.licence} | {_said(spec)} ({spec.note}) |"
        )
    lines.append(README_LICENCES)
    (out_dir / "README.md").write_text("\n".join(lines), encoding="utf-8")


def make_set(out_dir: Path) -> dict[str, float]:
    """Write every file, the manifest and the README into ``out_dir``; file -> seconds."""
    versions = {spec.package: package_version(spec.package) for spec in VOICES}
    for engine in {spec.engine for spec in VOICES} & set(ENGINE_PROGRAMS):
        _require_program(engine)
    out_dir.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="real_voices_") as tmp:
        for spec in VOICES:
            seconds[spec.file] = make_one(spec, out_dir, Path(tmp))
            print(f"{spec.file}: {seconds[spec.file]:.2f} s", flush=True)
    write_manifest(out_dir, versions)
    write_readme(out_dir, versions, seconds)
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})"
    )
    args = parser.parse_args(argv)
    try:
        make_set(args.out)
    except (SetupError, OSError) as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
