"""Routing rules (R13): evaluated in order, first match wins, keywords without case or accents."""

from __future__ import annotations

import pytest

from mailservice.config import ConfigError, parse_config
from tasks.routing import RoutingRule, first_match

RULES = (
    RoutingRule("facturacion", subject_keywords=("factura", "cobro"), category="Facturación", group="Finanzas",
                priority="high", tags=("billing",)),
    RoutingRule("acme", sender_domains=("acme.test",), group="Cuentas clave"),
    RoutingRule("vpn", body_regex=r"\bvpn\b", category="Redes"),
)


def test_first_matching_rule_wins_in_order():
    rule = first_match(RULES, "jorge@acme.test", "Cobro duplicado", "la vpn no conecta")
    assert rule.name == "facturacion"
    assert first_match(RULES, "jorge@acme.test", "Impresora", "la vpn no conecta").name == "acme"
    assert first_match(RULES, "ana@cliente.test", "Acceso", "La VPN no conecta").name == "vpn"
    assert first_match(RULES, "ana@cliente.test", "Acceso", "no puedo entrar") is None


def test_keywords_ignore_case_and_accents():
    rule = RoutingRule("x", subject_keywords=("facturacion",))
    assert rule.matches("a@b.test", "Error en FACTURACIÓN electrónica", "")


def test_all_conditions_of_a_rule_must_hold_and_subdomains_count():
    rule = RoutingRule("x", sender_domains=("acme.test",), subject_keywords=("urgente",))
    assert rule.matches("a@ventas.acme.test", "Urgente: servidor caído", "")
    assert not rule.matches("a@acme.test", "Servidor caído", "")
    assert not rule.matches("a@notacme.test", "Urgente", "")


def test_rules_come_from_the_mailbox_config(tmp_path):
    config = parse_config(
        {
            "helpdesk": {"url": "http://127.0.0.1:1"},
            "mailboxes": [{
                "name": "s", "kind": "maildir", "path": "m", "address": "s@x.test",
                "routing": [{"name": "fact", "when": {"subject_any": ["factura"]},
                             "set": {"category": "Facturación", "priority": "high", "tags": ["b"]}}],
            }],
        },
        tmp_path / "c.yaml",
    )
    [rule] = config.mailboxes[0].routing_rules()
    assert (rule.name, rule.category, rule.priority, rule.tags) == ("fact", "Facturación", "high", ("b",))


def test_a_bad_regex_is_a_config_error_naming_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"routing\[0\]\.when\.body_regex: not a valid regular expression"):
        parse_config(
            {"helpdesk": {"url": "http://127.0.0.1:1"},
             "mailboxes": [{"name": "s", "kind": "maildir", "path": "m", "address": "s@x.test",
                            "routing": [{"name": "r", "when": {"body_regex": "(unclosed"}, "set": {}}]}]},
            tmp_path / "c.yaml",
        )
