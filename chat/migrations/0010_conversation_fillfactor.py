from django.db import migrations

# Every chat message updates its chat's row (the seq counters, under the row lock), so a busy
# chat's row gets a new version many times a second. PostgreSQL keeps those versions on the
# same page (HOT) and prunes the old ones only when it can lock the page alone; with rows
# packed tight and every message pinning their page, pruning kept failing, the chains of
# old versions grew, and each lookup walked them. In the load benchmark at a steady 600
# messages/s, the server machine went from 69 % to 81 % busy within 190 s and the step failed
# (PostgreSQL's own profile: heap_hot_search_buffer from 4 % to 14 %); with half of each page
# left free it held for 11 minutes at 63-72 % (docs/benchmarks.md, "Long, busy chats").
# Only new pages are filled to 50 %: the live chats are the newest rows, so no rewrite (and no
# lock of the table) is needed; ended chats keep their old packing. The cost is disk: a
# conversation row is about 300 bytes, so a million chats take about 300 MB more.
FILLFACTOR = 50


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"ALTER TABLE chat_conversation SET (fillfactor = {FILLFACTOR})")


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE chat_conversation RESET (fillfactor)")


class Migration(migrations.Migration):
    dependencies = [
        ("chat", "0009_message_rate_window_index"),
    ]

    operations = [migrations.RunPython(forwards, backwards)]
