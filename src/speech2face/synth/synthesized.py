"""Speakers from speech synthesisers built on real recorded speakers (Festival diphone / HTS voices, flite's
CMU ARCTIC voices): where recorded men run out, their timbre comes from these.

Each voice says a fixed list of sentences of its language once; the utterances are cached as 16 kHz WAV files
($S2F_VOICES, default ~/.cache/speech2face/voices: <voice>-<hash of command and texts>/NNN.wav, written
atomically), so every world and every worker reads the same files, as it reads a Debian package's recordings.

    paths = bank(command, language, package)   # synthesises what is missing; DataError names a missing package

Prosody is the synthesiser's (diphone voices are monotone and regular); the timbre is the recorded speaker's.
docs/synth.md measures what they do to real voices.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from ..errors import AudioError, DataError
from ..files import atomic_write
from ..voice.audio import SAMPLE_RATE, load_audio
from .speech import SENTENCES

BANK_VERSION = 1
# public-domain style everyday sentences, written for this project (Czech, Finnish, Catalan)
TEXTS: dict[str, tuple[str, ...]] = {
    "en": SENTENCES[:24],
    "cs": ("Dobrý den, jak se dnes máte?", "Venku prší a fouká studený vítr.", "Zítra ráno pojedeme vlakem do Brna.",
        "Na stole leží kniha a dvě jablka.", "Můj bratr pracuje v malé dílně.",
        "Večer jsme šli na procházku k řece.", "Kočka spí na okně celé odpoledne.", "V létě je v horách krásně.",
        "Potřebuji koupit chleba a mléko.", "Dětí si hrají na zahradě s míčem.", "Ta stará cesta vede přes les.",
        "Nádraží je hned za rohem.", "Babička peče koláče každou neděli.", "Pošta dnes zavírá o něco dříve.",
        "Na jaře kvetou třešně a jabloně.", "Loni jsme byli u moře v Chorvatsku.", "Sousedův pes štěká na každého.",
        "Oběd bude hotový za půl hodiny.", "Rád čtu noviny u ranní kávy.", "Most přes řeku opravují už rok."),
    "fi": ("Hyvää päivää, mitä sinulle kuuluu?", "Ulkona sataa ja tuulee kylmästi.",
        "Huomenna lähdemme junalla Turkuun.", "Pöydällä on kirja ja kaksi omenaa.",
        "Veljeni työskentelee pienessä korjaamossa.", "Illalla kävelimme joen rantaan.",
        "Kissa nukkuu ikkunalla koko iltapäivän.", "Kesällä järvellä on kaunista.",
        "Minun täytyy ostaa leipää ja maitoa.", "Lapset leikkivät pihalla pallolla.",
        "Vanha polku kulkee metsän läpi.", "Asema on aivan kulman takana.", "Isoäiti leipoo pullaa joka sunnuntai.",
        "Posti sulkeutuu tänään aikaisemmin.", "Keväällä kirsikkapuut kukkivat.",
        "Viime vuonna olimme meren rannalla.", "Naapurin koira haukkuu kaikille.",
        "Lounas on valmis puolen tunnin päästä.", "Luen mielelläni lehteä aamukahvin kanssa.",
        "Joen siltaa on korjattu jo vuoden."),
    "ca": ("Bon dia, com estàs avui?", "A fora plou i fa un vent fred.", "Demà al matí anirem a Girona amb tren.",
        "A la taula hi ha un llibre i dues pomes.", "El meu germà treballa en un petit taller.",
        "Al vespre vam passejar fins al riu.", "El gat dorm a la finestra tota la tarda.",
        "A l'estiu la muntanya és preciosa.", "He de comprar pa i llet.", "Els nens juguen al jardí amb una pilota.",
        "El camí vell travessa el bosc.", "L'estació és just a la cantonada.", "L'àvia fa coca cada diumenge.",
        "Avui l'oficina de correus tanca abans.", "A la primavera floreixen els cirerers.",
        "L'any passat vam anar a la platja.", "El gos del veí borda a tothom.",
        "El dinar estarà a punt d'aquí mitja hora.", "M'agrada llegir el diari amb el cafè.",
        "Fa un any que arreglen el pont del riu."),
}
# Festival reads its text file in the voice's 8-bit encoding
ENCODINGS = {"cs": "iso-8859-2", "fi": "iso-8859-1", "ca": "iso-8859-1", "en": "ascii"}
PROGRAMS = {"festival": ("text2wave", "festival"), "flite": ("flite", "flite")}  # tool -> (executable, package)


def cache_root() -> Path:
    """$S2F_VOICES, else ~/.cache/speech2face/voices: apart from the models' cache ($S2F_CACHE), which tests
    empty to build models from nothing; these files only depend on the installed voices."""
    if os.environ.get("S2F_VOICES"):
        return Path(os.environ["S2F_VOICES"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "speech2face" / "voices"


def bank(command: tuple[str, str], language: str, package: str) -> list[Path]:
    """The cached utterances of a synthesised voice (`command`: ("festival", "(voice_kal_diphone)") or
    ("flite", "awb")), synthesising the missing ones; `package` is named when the voice is not installed."""
    texts = TEXTS[language]
    digest = hashlib.sha256(repr((BANK_VERSION, command, texts)).encode()).hexdigest()[:10]
    name = command[1].strip("()").removeprefix("voice_")
    folder = cache_root() / f"{command[0]}-{name}-{digest}"
    paths = [folder / f"{index:03d}.wav" for index in range(len(texts))]
    missing = [(path, text) for path, text in zip(paths, texts, strict=True) if not path.is_file()]
    if missing:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise DataError(f"cannot keep the synthesised voices in {cache_root()} ({error.strerror}); set "
                            "S2F_VOICES to a writable folder") from error
        for path, text in missing:
            wave = synthesise(command, text, language, package)
            atomic_write(path, lambda temporary, w=wave: _write_wav(temporary, w))
    return paths


def synthesise(command: tuple[str, str], text: str, language: str, package: str) -> np.ndarray:
    """One sentence spoken by the voice, 16 kHz float32; DataError when the synthesiser or voice is missing."""
    tool, voice = command
    executable, tool_package = PROGRAMS[tool]
    if shutil.which(executable) is None:
        raise DataError(f"the synthesised speakers need {tool}: apt-get install {tool_package} {package}")
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "out.wav"
        if tool == "festival":
            source = Path(scratch) / "text.txt"
            source.write_bytes(text.encode(ENCODINGS[language], errors="replace"))
            argv = [executable, "-eval", voice, str(source), "-o", str(out)]
        else:
            argv = [executable, "-voice", voice, "-t", text, "-o", str(out)]
        done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=120)
        if done.returncode != 0 or not out.is_file() or out.stat().st_size < 1000:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise DataError(f"{tool} {voice} did not speak (apt-get install {package}?): {tail[0][:200]}")
        try:
            return load_audio(out)
        except AudioError as error:
            raise DataError(f"{tool} {voice} wrote an unreadable file: {error}") from error


def _write_wav(path: Path, wave: np.ndarray) -> None:
    import soundfile

    soundfile.write(path, wave, SAMPLE_RATE, subtype="PCM_16", format="WAV")
