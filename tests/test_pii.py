"""PII scrubbing: every type in several formats is replaced, every decoy class is left alone."""
from __future__ import annotations

import json

import pytest

from instruct.config import ConfigError
from instruct.pii.detectors import iban_valid, luhn_valid
from instruct.pii.step import PiiScrub
from instruct.schema import documents_table, examples_table

POSITIVES = {
    "EMAIL": ["john.doe@example.com", "J.Smith+news@mail.example.co.uk", "user_42@sub.example.org"],
    "PHONE": ["(415) 555-2671", "212-555-0199", "312.555.0147", "+1 646 555 0123", "1-800-555-0199",
              "+44 20 7946 0958", "+49 30 12345678", "+33 1 23 45 67 89", "+91 98765 43210", "+81 3-1234-5678"],
    "IP_ADDRESS": ["192.168.1.20", "10.0.0.1", "203.0.113.77", "2001:db8:85a3::8a2e:370:7334",
                   "2001:0db8:0000:0000:0000:ff00:0042:8329", "fe80::1ff:fe23:4567:890a"],
    "CREDIT_CARD": ["4111 1111 1111 1111", "5500-0000-0000-0004", "378282246310005", "3782 822463 10005",
                    "6011111111111117", "4012888888881881"],
    "IBAN": ["DE89 3704 0044 0532 0130 00", "GB29NWBK60161331926819", "FR14 2004 1010 0505 0001 3M02 606",
             "NL91ABNA0417164300"],
    "US_SSN": ["123-45-6789", "078-05-1121", "536-22-1111"],
    "SECRET": ["AKIAIOSFODNN7EXAMPLE", "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
               "xoxb-123456789012-1234567890123-abcdefghijklmnopqrstuvwx", "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
               "AIzaSyA1234567890abcdefghijklmnopqrstuv"],
    "ADDRESS": ["1600 Pennsylvania Avenue NW, Washington, DC 20500", "221B Baker Street, London NW1 6XE",
                "742 Evergreen Terrace, Springfield, IL 62704", "350 5th Avenue, New York, NY 10118",
                "12 High Street, Oxford OX1 4AB", "PO Box 1234"],
}

DECOYS = {
    "isbn": ["ISBN 978-3-16-148410-0", "ISBN 0-306-40615-2", "ISBN 9780306406157"],
    "version": ["version 1.2.3.4", "v2.10.4.1", "Python 3.11.7", "release 10.0.19041.1", "upgrade to 4.2.1.7"],
    "oid": ["OID 1.2.840.113549.1.1.11", "1.3.6.1.4.1.311.21.20", "OID 2.5.4.3"],
    "datetime": ["2023-01-15", "01/15/2023", "15.01.2023", "2023-01-15T10:30:00Z", "10:30:45", "20230115 1030"],
    "hex_hash": ["d41d8cd98f00b204e9800998ecf8427e", "DA39A3EE5E6B4B0D3255BFEF95601890AFD80709",
                 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"],
    "uuid": ["123e4567-e89b-12d3-a456-426614174000"],
    "order_number": ["Order #123-4567890-1234567", "order no. 4839201746", "INV-00012345", "PO-2023-004512"],
    "tracking_number": ["tracking 1Z999AA10123456784", "9400 1000 0000 0000 0000 00", "tracking number 4111111111111111"],
    "luhn_failing_card": ["4111 1111 1111 1112", "5500-0000-0000-0005", "378282246310006"],
    "bad_iban": ["DE88 3704 0044 0532 0130 00", "GB28NWBK60161331926819"],
    "invalid_ssn": ["000-12-3456", "666-12-3456", "912-34-5678", "123-00-4567", "123-45-0000"],
    "bad_dotted_quad": ["256.1.1.1", "300.168.1.999", "192.168.01.1"],
    "retina_file": ["icon@2x.png", "logo@3x.webp", "sprite@2x.jpg"],
}


@pytest.fixture(scope="module")
def scrubber() -> PiiScrub:
    return PiiScrub()


@pytest.mark.parametrize("kind,value", [(k, v) for k, values in POSITIVES.items() for v in values])
def test_every_type_is_replaced(scrubber, kind, value):
    text = f"Please note: {value} is on file."
    clean, counts = scrubber.scrub(text)
    assert value not in clean and f"<{kind}>" in clean
    assert counts == {kind: 1}
    assert clean.startswith("Please note: ") and clean.endswith(" is on file.")


@pytest.mark.parametrize("kind,value", [(k, v) for k, values in DECOYS.items() for v in values])
def test_every_decoy_is_left_alone(scrubber, kind, value):
    text = f"See {value} in the notes."
    assert scrubber.scrub(text) == (text, {})


def test_secrets_in_assignments_and_key_blocks(scrubber):
    text = ('aws_secret_access_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"\npassword: Tr0ub4dor&3xyzQ\n'
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA7\nabc+/def==\n-----END RSA PRIVATE KEY-----\n"
            "token = get_token_from_env()\npassword = changeme_changeme")
    clean, counts = scrubber.scrub(text)
    assert counts == {"SECRET": 3}
    assert 'aws_secret_access_key = "<SECRET>"' in clean and "password: <SECRET>" in clean
    assert "PRIVATE KEY" not in clean
    assert "get_token_from_env()" in clean and "changeme_changeme" in clean  # code and placeholders stay


def test_phone_needs_a_keyword_when_it_is_bare_digits(scrubber):
    assert scrubber.scrub("Order 4155552671 shipped")[1] == {}
    assert scrubber.scrub("Call 4155552671 today")[1] == {"PHONE": 1}


def test_both_phone_validators_accept_real_numbers():
    for validator in ("phonenumbers", "pattern"):
        step = PiiScrub(phone_validator=validator)
        for value in POSITIVES["PHONE"]:
            assert step.scrub(f"tel {value}.")[1] == {"PHONE": 1}, (validator, value)


def test_checksums():
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")
    assert iban_valid("DE89370400440532013000") and not iban_valid("DE89370400440532013001")
    assert not iban_valid("DE8937040044053201300")  # wrong length for Germany


def test_types_and_placeholders_are_configurable():
    step = PiiScrub(types=["EMAIL"], placeholders={"EMAIL": "[email]"})
    assert step.scrub("mail a@example.com or call (415) 555-2671") == \
        ("mail [email] or call (415) 555-2671", {"EMAIL": 1})
    with pytest.raises(ConfigError, match="PASSPORT"):
        PiiScrub(types=["PASSPORT"])


def test_documents_and_every_message_of_examples_are_scrubbed(scrubber, docstrings):
    text = docstrings[0][1] + " Write to ada@example.org."
    out = scrubber.apply(documents_table([{"id": "1", "text": text, "source": "t", "url_or_path": "", "meta": {}}]))
    assert out.table.column("text")[0].as_py().endswith("Write to <EMAIL>.") and out.counters == {"EMAIL": 1}
    messages = [{"role": "system", "content": "Agent ID 10.0.0.1"}, {"role": "user", "content": "I am 123-45-6789"},
                {"role": "assistant", "content": "Noted, call (415) 555-2671."}]
    out = scrubber.apply(examples_table([{"id": "e", "messages": messages, "source": "t", "meta": {}}]))
    contents = [m["content"] for m in out.table.column("messages")[0].as_py()]
    assert contents == ["Agent ID <IP_ADDRESS>", "I am <US_SSN>", "Noted, call <PHONE>."]
    assert out.counters == {"IP_ADDRESS": 1, "US_SSN": 1, "PHONE": 1}


def test_counts_per_type_reach_the_manifest(tmp_path, docstrings):
    from instruct.io.readers.base import ReadConfig
    from instruct.pipeline.recipe import Recipe, WriteConfig
    from instruct.pipeline.runner import build

    source = tmp_path / "in.jsonl"
    lines = [{"id": str(i), "text": f"{doc} Contact bob{i}@example.com or 203.0.113.{i + 1}."}
             for i, (_, doc) in enumerate(docstrings[:20])]
    source.write_text("".join(json.dumps(line) + "\n" for line in lines))
    recipe = Recipe(read=ReadConfig(paths=[str(source)]), steps=["pii"], write=WriteConfig(output=str(tmp_path / "o")))
    manifest = build(recipe, show_progress=False)
    step = next(s for s in manifest["counts"]["steps"] if s["step"] == "pii")
    assert step["counters"]["EMAIL"] == 20 and step["counters"]["IP_ADDRESS"] >= 20
