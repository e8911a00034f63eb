from revierlotse.channels.guard import clean_text, is_button_payload


def test_button_payloads_pass_unchanged():
    for payload in ("/ask_salary", "/greet", "/ask_capabilities", " /ask_outlook "):
        assert clean_text(payload) == payload.strip()
        assert is_button_payload(payload)


def test_intent_injection_with_entities_or_slots_is_turned_into_plain_text():
    assert clean_text('/ask_salary{"level": "senior"}') == 'ask_salary{"level": "senior"}'
    assert clean_text("/restart") == "restart"
    assert clean_text('//inform{"background":"x"}') == 'inform{"background":"x"}'
    assert not is_button_payload("/nlu_fallback")


def test_only_button_payloads_of_intents_the_domain_declares_pass_as_intents():
    from revierlotse.channels.guard import domain_intents

    assert {"ask_salary", "greet", "delete_data"} <= domain_intents()
    assert is_button_payload("/ask_salary") and clean_text("/ask_salary") == "/ask_salary"
    for unknown in ("/ask_xyz", "/ask_gehalt", "/ask_"):
        assert not is_button_payload(unknown)
        assert clean_text(unknown) == unknown[1:]


def test_control_characters_and_nul_are_removed_line_breaks_kept_as_spaces():
    assert clean_text("Gehalt\x00?\x07") == "Gehalt?"
    assert clean_text("Was\nverdient\tman?") == "Was verdient man?"


def test_emoji_umlauts_and_rtl_text_survive():
    assert clean_text("💶 Gehalt für Einsteiger? ✨") == "💶 Gehalt für Einsteiger? ✨"
    assert clean_text("مرحبا") == "مرحبا"


def test_telegram_conversation_ids_are_reserved_for_the_telegram_channel():
    from revierlotse.channels.guard import is_reserved_sender
    from revierlotse.channels.telegram import chat_of_sender, sender_of_chat

    assert sender_of_chat(12345) == "telegram:12345"
    assert chat_of_sender("telegram:-100777") == "-100777"
    assert is_reserved_sender("telegram:12345") and is_reserved_sender("Telegram:1")
    assert not is_reserved_sender("anna-42")
