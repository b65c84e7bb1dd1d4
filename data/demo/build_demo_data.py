"""Build the demo's small parallel instruction set in EN, DE, FR, IT, ES.

The files next to this script (``instructions_<LANG>.jsonl``) are its output and are what the
demo and the tests use. Each row has Bactrian-X's layout (``id, instruction, input, output``) so the
demo goes through the same loading code as the real data. Items with the same ``id`` are
translations of each other (parallel data), written from the templates below.

The data is synthetic (arithmetic, capitals, calendar facts, counting, comparisons, greetings):
enough to fine-tune a tiny model that visibly learns to answer in the instruction's language. Each
question may open with a polite request and each answer ends with a closing sentence, both in the
item's language (the same choice in every translation of an item): whole sentences of everyday
words, so that a tiny model learns what each language looks like and its answers are long enough
for a language detector to tell them apart.
It is not a substitute for Lima-X or Bactrian-X.

Run: python data/demo/build_demo_data.py   (deterministic; rewrites the five files)
"""

from __future__ import annotations

import json
import random
from pathlib import Path

LANGS = ("EN", "DE", "FR", "IT", "ES")

COUNTRIES = {  # country, capital (per language)
    "france": {"EN": ("France", "Paris"), "DE": ("Frankreich", "Paris"), "FR": ("la France", "Paris"),
               "IT": ("la Francia", "Parigi"), "ES": ("Francia", "París")},
    "germany": {"EN": ("Germany", "Berlin"), "DE": ("Deutschland", "Berlin"), "FR": ("l'Allemagne", "Berlin"),
                "IT": ("la Germania", "Berlino"), "ES": ("Alemania", "Berlín")},
    "italy": {"EN": ("Italy", "Rome"), "DE": ("Italien", "Rom"), "FR": ("l'Italie", "Rome"),
              "IT": ("l'Italia", "Roma"), "ES": ("Italia", "Roma")},
    "spain": {"EN": ("Spain", "Madrid"), "DE": ("Spanien", "Madrid"), "FR": ("l'Espagne", "Madrid"),
              "IT": ("la Spagna", "Madrid"), "ES": ("España", "Madrid")},
    "portugal": {"EN": ("Portugal", "Lisbon"), "DE": ("Portugal", "Lissabon"), "FR": ("le Portugal", "Lisbonne"),
                 "IT": ("il Portogallo", "Lisbona"), "ES": ("Portugal", "Lisboa")},
    "austria": {"EN": ("Austria", "Vienna"), "DE": ("Österreich", "Wien"), "FR": ("l'Autriche", "Vienne"),
                "IT": ("l'Austria", "Vienna"), "ES": ("Austria", "Viena")},
    "poland": {"EN": ("Poland", "Warsaw"), "DE": ("Polen", "Warschau"), "FR": ("la Pologne", "Varsovie"),
               "IT": ("la Polonia", "Varsavia"), "ES": ("Polonia", "Varsovia")},
    "greece": {"EN": ("Greece", "Athens"), "DE": ("Griechenland", "Athen"), "FR": ("la Grèce", "Athènes"),
               "IT": ("la Grecia", "Atene"), "ES": ("Grecia", "Atenas")},
    "sweden": {"EN": ("Sweden", "Stockholm"), "DE": ("Schweden", "Stockholm"), "FR": ("la Suède", "Stockholm"),
               "IT": ("la Svezia", "Stoccolma"), "ES": ("Suecia", "Estocolmo")},
    "netherlands": {"EN": ("the Netherlands", "Amsterdam"), "DE": ("die Niederlande", "Amsterdam"),
                    "FR": ("les Pays-Bas", "Amsterdam"), "IT": ("i Paesi Bassi", "Amsterdam"),
                    "ES": ("los Países Bajos", "Ámsterdam")},
    "belgium": {"EN": ("Belgium", "Brussels"), "DE": ("Belgien", "Brüssel"), "FR": ("la Belgique", "Bruxelles"),
                "IT": ("il Belgio", "Bruxelles"), "ES": ("Bélgica", "Bruselas")},
    "ireland": {"EN": ("Ireland", "Dublin"), "DE": ("Irland", "Dublin"), "FR": ("l'Irlande", "Dublin"),
                "IT": ("l'Irlanda", "Dublino"), "ES": ("Irlanda", "Dublín")},
}

DAYS = {
    "EN": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"],
    "DE": ["Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag", "Sonntag"],
    "FR": ["lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche"],
    "IT": ["lunedì", "martedì", "mercoledì", "giovedì", "venerdì", "sabato", "domenica"],
    "ES": ["lunes", "martes", "miércoles", "jueves", "viernes", "sábado", "domingo"],
}
MONTHS = {
    "EN": ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"],
    "DE": ["Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August", "September", "Oktober",
           "November", "Dezember"],
    "FR": ["janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre",
           "novembre", "décembre"],
    "IT": ["gennaio", "febbraio", "marzo", "aprile", "maggio", "giugno", "luglio", "agosto", "settembre",
           "ottobre", "novembre", "dicembre"],
    "ES": ["enero", "febrero", "marzo", "abril", "mayo", "junio", "julio", "agosto", "septiembre", "octubre",
           "noviembre", "diciembre"],
}
# Openings of a question and closing sentences of an answer, per language; item i of every language is
# a translation of item i of the others.
OPENINGS = {
    "EN": ["", "", "Please answer the following question. ", "I have a question for you. ",
           "Could you help me with this? "],
    "DE": ["", "", "Bitte beantworte die folgende Frage. ", "Ich habe eine Frage an dich. ",
           "Kannst du mir dabei helfen? "],
    "FR": ["", "", "Réponds à la question suivante, s'il te plaît. ", "J'ai une question pour toi. ",
           "Peux-tu m'aider avec ceci ? "],
    "IT": ["", "", "Per favore, rispondi alla seguente domanda. ", "Ho una domanda per te. ",
           "Puoi aiutarmi con questo? "],
    "ES": ["", "", "Por favor, responde a la siguiente pregunta. ", "Tengo una pregunta para ti. ",
           "¿Puedes ayudarme con esto? "],
}
CLOSINGS = {
    "EN": ["I hope this helps you.", "Let me know if you have another question.",
           "This is a simple and clear answer.", "Thank you for your question, it was a pleasure to help.",
           "I am happy to explain more if you want."],
    "DE": ["Ich hoffe, das hilft dir weiter.", "Sag mir Bescheid, wenn du noch eine Frage hast.",
           "Das ist eine einfache und klare Antwort.", "Danke für deine Frage, ich helfe dir gerne.",
           "Ich erkläre es dir gerne noch genauer, wenn du willst."],
    "FR": ["J'espère que cela t'aide.", "Dis-moi si tu as une autre question.",
           "C'est une réponse simple et claire.", "Merci pour ta question, c'était un plaisir de t'aider.",
           "Je peux t'expliquer davantage si tu le souhaites."],
    "IT": ["Spero che questo ti sia utile.", "Fammi sapere se hai un'altra domanda.",
           "Questa è una risposta semplice e chiara.", "Grazie per la tua domanda, è stato un piacere aiutarti.",
           "Sono felice di spiegarti di più, se vuoi."],
    "ES": ["Espero que esto te ayude.", "Avísame si tienes otra pregunta.",
           "Esta es una respuesta sencilla y clara.", "Gracias por tu pregunta, fue un placer ayudarte.",
           "Con gusto te explico más si quieres."],
}
NAMES = ["Anna", "Marco", "Lena", "Pablo", "Sophie", "Luca", "Clara", "Jonas", "Elena", "Hugo"]

TEMPLATES = {
    "add": {
        "EN": ("What is {a} plus {b}?", "{a} plus {b} is {c}."),
        "DE": ("Was ist {a} plus {b}?", "{a} plus {b} ist {c}."),
        "FR": ("Combien font {a} plus {b} ?", "{a} plus {b} font {c}."),
        "IT": ("Quanto fa {a} più {b}?", "{a} più {b} fa {c}."),
        "ES": ("¿Cuánto es {a} más {b}?", "{a} más {b} es {c}."),
    },
    "capital": {
        "EN": ("What is the capital of {country}?", "The capital of {country} is {capital}."),
        "DE": ("Was ist die Hauptstadt von {country}?", "Die Hauptstadt von {country} ist {capital}."),
        "FR": ("Quelle est la capitale de {country} ?", "La capitale de {country} est {capital}."),
        "IT": ("Qual è la capitale del paese {country}?", "La capitale del paese {country} è {capital}."),
        "ES": ("¿Cuál es la capital de {country}?", "La capital de {country} es {capital}."),
    },
    "next_day": {
        "EN": ("Which day comes after {day}?", "After {day} comes {next}."),
        "DE": ("Welcher Tag kommt nach {day}?", "Nach {day} kommt {next}."),
        "FR": ("Quel jour vient après {day} ?", "Après {day} vient {next}."),
        "IT": ("Quale giorno viene dopo {day}?", "Dopo {day} viene {next}."),
        "ES": ("¿Qué día viene después del {day}?", "Después del {day} viene el {next}."),
    },
    "next_month": {
        "EN": ("Which month follows {month}?", "{month} is followed by {next}."),
        "DE": ("Welcher Monat folgt auf {month}?", "Auf {month} folgt {next}."),
        "FR": ("Quel mois suit {month} ?", "Le mois qui suit {month} est {next}."),
        "IT": ("Quale mese segue {month}?", "Dopo {month} viene {next}."),
        "ES": ("¿Qué mes sigue a {month}?", "Después de {month} viene {next}."),
    },
    "count": {
        "EN": ("Count from {a} to {b}.", "Here you go: {seq}."),
        "DE": ("Zähle von {a} bis {b}.", "Bitte sehr: {seq}."),
        "FR": ("Compte de {a} à {b}.", "Voici : {seq}."),
        "IT": ("Conta da {a} a {b}.", "Ecco: {seq}."),
        "ES": ("Cuenta de {a} a {b}.", "Aquí tienes: {seq}."),
    },
    "larger": {
        "EN": ("Which number is larger, {a} or {b}?", "{big} is larger than {small}."),
        "DE": ("Welche Zahl ist größer, {a} oder {b}?", "{big} ist größer als {small}."),
        "FR": ("Quel nombre est le plus grand, {a} ou {b} ?", "{big} est plus grand que {small}."),
        "IT": ("Quale numero è più grande, {a} o {b}?", "{big} è più grande di {small}."),
        "ES": ("¿Qué número es mayor, {a} o {b}?", "{big} es mayor que {small}."),
    },
    "greet": {
        "EN": ("Write a short greeting for {name}.", "Hello {name}, it is nice to meet you! I hope you have a wonderful day."),
        "DE": ("Schreibe einen kurzen Gruß für {name}.", "Hallo {name}, schön, dich kennenzulernen! Ich wünsche dir einen wunderbaren Tag."),
        "FR": ("Écris une courte salutation pour {name}.", "Bonjour {name}, ravi de te rencontrer ! Je te souhaite une excellente journée."),
        "IT": ("Scrivi un breve saluto per {name}.", "Ciao {name}, piacere di conoscerti! Ti auguro una splendida giornata."),
        "ES": ("Escribe un saludo breve para {name}.", "Hola {name}, ¡encantado de conocerte! Te deseo un día maravilloso."),
    },
    "multiply": {
        "EN": ("Calculate {a} times {b}.", "{a} times {b} equals {c}."),
        "DE": ("Berechne {a} mal {b}.", "{a} mal {b} ergibt {c}."),
        "FR": ("Calcule {a} fois {b}.", "{a} fois {b} égale {c}."),
        "IT": ("Calcola {a} per {b}.", "{a} per {b} fa {c}."),
        "ES": ("Calcula {a} por {b}.", "{a} por {b} es igual a {c}."),
    },
}


def _items(rng: random.Random) -> list[tuple[str, dict]]:
    """(template name, slot values per language) for every item; slot values may differ by language."""
    items = []
    for _ in range(40):
        a, b = rng.randint(2, 60), rng.randint(2, 60)
        items.append(("add", {lang: dict(a=a, b=b, c=a + b) for lang in LANGS}))
    for key, names in COUNTRIES.items():
        items.append(("capital", {lang: dict(country=names[lang][0], capital=names[lang][1]) for lang in LANGS}))
    for i in range(7):
        items.append(("next_day", {lang: dict(day=DAYS[lang][i], next=DAYS[lang][(i + 1) % 7]) for lang in LANGS}))
    for i in range(12):
        items.append(("next_month", {lang: dict(month=MONTHS[lang][i], next=MONTHS[lang][(i + 1) % 12])
                                     for lang in LANGS}))
    for _ in range(30):
        a = rng.randint(1, 20)
        b = a + rng.randint(2, 6)
        items.append(("count", {lang: dict(a=a, b=b, seq=", ".join(str(x) for x in range(a, b + 1)))
                                for lang in LANGS}))
    for _ in range(40):
        a, b = rng.sample(range(1, 500), 2)
        items.append(("larger", {lang: dict(a=a, b=b, big=max(a, b), small=min(a, b)) for lang in LANGS}))
    for name in NAMES:
        items.append(("greet", {lang: dict(name=name) for lang in LANGS}))
    for _ in range(40):
        a, b = rng.randint(2, 12), rng.randint(2, 12)
        items.append(("multiply", {lang: dict(a=a, b=b, c=a * b) for lang in LANGS}))
    return items


def build(out_dir: Path) -> None:
    rng = random.Random(20240220)
    items = _items(rng)
    openings = [rng.randrange(len(OPENINGS["EN"])) for _ in items]
    closings = [rng.randrange(len(CLOSINGS["EN"])) for _ in items]
    for lang in LANGS:
        lines = []
        for index, ((template, slots), opening, closing) in enumerate(zip(items, openings, closings)):
            instruction, output = TEMPLATES[template][lang]
            row = {
                "id": f"demo-{index:04d}",
                "instruction": OPENINGS[lang][opening] + instruction.format(**slots[lang]),
                "input": "",
                "output": output.format(**slots[lang]) + " " + CLOSINGS[lang][closing],
            }
            lines.append(json.dumps(row, ensure_ascii=False))
        (out_dir / f"instructions_{lang}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    build(Path(__file__).resolve().parent)
