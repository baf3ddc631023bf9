"""Tiny synthetic corpora for the smoke profile: generated in code, offline, in milliseconds.

Each source draws template sentences from a fixed vocabulary with its own seeded
``random.Random``, so the text is identical on every machine. The vocabularies differ
(everyday vs physics vs insults) so retrieval and SAE steps have something to find.
"""

from __future__ import annotations

import random
from typing import Any, Mapping

from ssae_utils.data.documents import Document, make_document
from ssae_utils.data.sources.registry import register_source

_GENERAL = {
    "subj": ["the council", "a local farmer", "the new cafe", "our neighbour", "the market",
             "the football club", "a young teacher", "the city library", "the museum",
             "a small bakery", "the orchestra", "the mayor"],
    "verb": ["opened", "announced", "celebrated", "planned", "reviewed", "visited", "sold",
             "painted", "cooked", "repaired", "organised", "praised"],
    "obj": ["a summer festival", "fresh bread", "the old bridge", "a new garden",
            "the weekly menu", "a charity run", "the school play", "an art exhibition",
            "the holiday timetable", "a book fair", "the harbour walk", "a film night"],
    "tail": ["on Sunday", "after the rain", "for the families", "near the station",
             "with great success", "despite the traffic", "before the election", "in spring"],
}
_PHYSICS = {
    "subj": ["the electron", "a photon", "the magnetic field", "the quantum state",
             "the neutron star", "a proton beam", "the wave function", "the plasma",
             "the superconductor", "a gravitational wave", "the laser cavity", "the quark"],
    "verb": ["scatters", "decays into", "couples to", "oscillates with", "absorbs",
             "tunnels through", "radiates", "accelerates", "polarizes", "interferes with"],
    "obj": ["a virtual boson", "the lattice phonons", "the vacuum fluctuations",
            "the spin current", "a harmonic potential", "the neutrino flux",
            "the dark matter halo", "the Hamiltonian eigenstates", "the entropy gradient"],
    "tail": ["at high energy", "near absolute zero", "in the rest frame",
             "under a uniform field", "by conservation of momentum", "at relativistic speed"],
}
_OOD = ["Returns the {q} of the {o} in the given reference frame.",
        "Parameters: {o} : Symbol. The {q} used to build the {o}.",
        "Computes the {q} for a {o}; raises ValueError if the {o} is not defined.",
        "Q: What is the {q} of a {o}? A: It follows from the {o} equations."]
_OOD_Q = ["angular momentum", "kinetic energy", "commutator", "Lagrangian", "torque",
          "inertia tensor", "Hamiltonian", "Pauli matrix", "wave number", "spin operator"]
_OOD_O = ["rigid body", "particle", "harmonic oscillator", "point mass", "quantum state",
          "pendulum", "beam", "gas", "field", "Hilbert space"]
_INSULT = ["you are a {a} {n}", "what a {a} {n} you are", "shut up, you {a} {n}",
           "only a {a} {n} would write this", "go away {n}, nobody cares"]
_INSULT_A = ["stupid", "pathetic", "worthless", "clueless", "brainless", "miserable", "dumb"]
_INSULT_N = ["idiot", "moron", "loser", "clown", "fool", "troll", "coward"]
_COMMENT = ["I think {o} is a good idea {t}", "thanks for sharing, {s} {v} {o}",
            "not sure about that, {s} {v} {o} {t}", "great point about {o}"]


def _sentence(rng: random.Random, vocab: Mapping[str, list[str]]) -> str:
    return (f"{rng.choice(vocab['subj'])} {rng.choice(vocab['verb'])} "
            f"{rng.choice(vocab['obj'])} {rng.choice(vocab['tail'])}.").capitalize()


def _paragraphs(rng: random.Random, vocab: Mapping[str, list[str]], n_sent: int) -> str:
    return " ".join(_sentence(rng, vocab) for _ in range(n_sent))


@register_source("smoke_general", kind="general", defaults={"n_docs": 160, "seed": 1},
                 description="synthetic everyday-news sentences (smoke profile)")
def load_smoke_general(opts: Mapping[str, Any]) -> list[Document]:
    rng = random.Random(opts["seed"])
    return [make_document(_paragraphs(rng, _GENERAL, rng.randint(3, 8)), "smoke_general",
                          "general", {"i": i}) for i in range(int(opts["n_docs"]))]


@register_source("smoke_physics", kind="physics", defaults={"n_docs": 80, "seed": 2},
                 description="synthetic physics sentences (smoke profile)")
def load_smoke_physics(opts: Mapping[str, Any]) -> list[Document]:
    rng = random.Random(opts["seed"])
    return [make_document(_paragraphs(rng, _PHYSICS, rng.randint(2, 6)), "smoke_physics",
                          "physics", {"i": i}) for i in range(int(opts["n_docs"]))]


@register_source("smoke_physics_ood", kind="physics_ood", defaults={"n_docs": 30, "seed": 3},
                 description="synthetic physics in docstring / Q&A register (smoke profile)")
def load_smoke_physics_ood(opts: Mapping[str, Any]) -> list[Document]:
    rng = random.Random(opts["seed"])
    docs = []
    for i in range(int(opts["n_docs"])):
        lines = [rng.choice(_OOD).format(q=rng.choice(_OOD_Q), o=rng.choice(_OOD_O))
                 for _ in range(rng.randint(2, 4))]
        docs.append(make_document("\n".join(lines), "smoke_physics_ood", "physics", {"i": i}))
    return docs


@register_source("smoke_toxicity", kind="toxicity", defaults={"n_docs": 120, "seed": 4},
                 description="synthetic insults (toxic=1) and polite comments (toxic=0)")
def load_smoke_toxicity(opts: Mapping[str, Any]) -> list[Document]:
    rng = random.Random(opts["seed"])
    docs = []
    for i in range(int(opts["n_docs"])):
        toxic = int(i % 3 != 2)  # two insults for each polite comment
        if toxic:
            text = " ".join(rng.choice(_INSULT).format(a=rng.choice(_INSULT_A),
                                                       n=rng.choice(_INSULT_N))
                            for _ in range(rng.randint(1, 3))) + "!"
        else:
            text = rng.choice(_COMMENT).format(
                s=rng.choice(_GENERAL["subj"]), v=rng.choice(_GENERAL["verb"]),
                o=rng.choice(_GENERAL["obj"]), t=rng.choice(_GENERAL["tail"])) + "."
        docs.append(make_document(text, "smoke_toxicity", "insult" if toxic else "comment",
                                  {"toxic": toxic, "i": i}))
    return docs


_NAMES = {"male": ["John", "Peter", "Ahmed", "Luca", "Kenji", "Carlos"],
          "female": ["Mary", "Anna", "Fatima", "Giulia", "Yuki", "Lucia"]}
_BIO = {"scholar": ["{n} is a physicist. {P} studied at the university, where {p} wrote "
                    "{q} thesis on {x}. {P} now teaches {x}.",
                    "{n} was a mathematician known for {q} work on {x}. {P} published many "
                    "papers."],
        "performer": ["{n} is an actor. {P} first appeared on stage at twelve, and {q} "
                      "films about {x} won prizes.",
                      "{n} is a singer. {P} recorded {q} first album about {x} in Paris."]}
_TOPICS = ["light", "numbers", "the sea", "love", "stars", "memory", "cities"]


@register_source("smoke_bios", kind="bios", defaults={"n_docs": 64, "seed": 5},
                 description="synthetic biographies: scholar/performer x male/female")
def load_smoke_bios(opts: Mapping[str, Any]) -> list[Document]:
    rng = random.Random(opts["seed"])
    pron = {"male": ("he", "He", "his"), "female": ("she", "She", "her")}
    docs = []
    for i in range(int(opts["n_docs"])):
        profession = ("scholar", "performer")[i % 2]
        gender = ("male", "female")[(i // 2) % 2]
        p, P, q = pron[gender]
        text = rng.choice(_BIO[profession]).format(
            n=f"{rng.choice(_NAMES[gender])} {chr(65 + i % 26)}{i}", p=p, P=P, q=q,
            x=rng.choice(_TOPICS))
        docs.append(make_document(text, "smoke_bios", "People",
                                  {"profession": profession, "gender": gender}))
    return docs
