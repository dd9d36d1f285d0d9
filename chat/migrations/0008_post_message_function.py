"""chat_post_message(): a chat message stored in one round trip, on PostgreSQL only.

Used by chat/message_fast_path.py from the event loop. It does what chat.pipeline.run does for
the common case (lock the chat with the sender's access check, no resend, under the rate limit,
the department the text was masked for), and nothing at all otherwise: it then returns no row
and the caller takes the full path, which gives the exact error or answers the resend. Each
statement of a VOLATILE plpgsql function takes a fresh snapshot in READ COMMITTED, so the resend
check and the count see everything committed before the row lock was granted, as the full path's
statements do.
"""

from django.db import migrations

CREATE = """
CREATE OR REPLACE FUNCTION chat_post_message(
    p_visitor_id bigint,          -- a visitor's message: their newest chat in p_statuses
    p_conversation_id bigint,     -- a staff message: this chat, held by p_user_id's agent profile
    p_user_id integer,
    p_statuses text[],
    p_require_status text,        -- the chat must be in this status (staff: active), or NULL
    p_department_id bigint,       -- the department the body was masked for
    p_role text,
    p_visibility text,
    p_body text,
    p_client_id text,
    p_created_at timestamptz,
    p_limit integer,              -- at most this many messages of p_role in the last minute, 0: none
    p_first_reply boolean         -- record the chat's and the holder's first reply if unset
) RETURNS TABLE (message_id bigint, conversation_id bigint, seq integer, public_seq integer,
                 sender_name text)
LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    c record;
    v_public boolean := p_visibility = 'public';
    v_seq integer;
    v_public_seq integer;
    v_id bigint;
BEGIN
    IF p_visitor_id IS NOT NULL THEN
        SELECT x.id, x.department_id, x.status, x.last_seq, x.last_public_seq,
               x.first_agent_reply_at, NULL::text AS name, true AS replied
          INTO c FROM chat_conversation x
         WHERE x.visitor_id = p_visitor_id AND x.status = ANY (p_statuses)
         ORDER BY x.created_at DESC LIMIT 1 FOR UPDATE;
    ELSE
        -- FOR UPDATE OF x: no lock on the agent's row, which every chat of that agent would wait on.
        SELECT x.id, x.department_id, x.status, x.last_seq, x.last_public_seq,
               x.first_agent_reply_at, a.display_name::text AS name,
               EXISTS (SELECT 1 FROM chat_assignment s WHERE s.conversation_id = x.id
                       AND s.ended_at IS NULL AND s.accepted_at IS NOT NULL
                       AND s.first_reply_at IS NOT NULL) AS replied
          INTO c FROM chat_conversation x JOIN chat_agentprofile a ON a.id = x.agent_id
         WHERE x.id = p_conversation_id AND a.user_id = p_user_id AND x.status = ANY (p_statuses)
           FOR UPDATE OF x;
    END IF;
    IF NOT FOUND
       OR (p_require_status IS NOT NULL AND c.status <> p_require_status)
       OR c.department_id IS DISTINCT FROM p_department_id THEN
        RETURN;
    END IF;
    IF p_client_id IS NOT NULL AND EXISTS (
        SELECT 1 FROM chat_message m WHERE m.conversation_id = c.id AND m.client_id = p_client_id
    ) THEN
        RETURN;
    END IF;
    IF p_limit > 0 AND (
        SELECT count(*) FROM chat_message m WHERE m.conversation_id = c.id AND m.role = p_role
           AND m.created_at >= p_created_at - interval '1 minute'
    ) >= p_limit THEN
        RETURN;
    END IF;
    v_seq := c.last_seq + 1;
    IF v_public THEN
        v_public_seq := c.last_public_seq + 1;
    END IF;
    UPDATE chat_conversation
       SET last_seq = v_seq,
           last_public_seq = COALESCE(v_public_seq, last_public_seq),
           first_agent_reply_at = CASE WHEN p_first_reply AND v_public AND first_agent_reply_at IS NULL
                                       THEN p_created_at ELSE first_agent_reply_at END
     WHERE id = c.id;
    INSERT INTO chat_message (conversation_id, seq, public_seq, role, sender_id, visibility,
                              whisper_to_id, body, client_id, meta, created_at)
    VALUES (c.id, v_seq, v_public_seq, p_role, p_user_id, p_visibility, NULL, p_body, p_client_id,
            '{}'::jsonb, p_created_at)
    RETURNING id INTO v_id;
    IF p_first_reply AND v_public AND NOT c.replied THEN
        UPDATE chat_assignment SET first_reply_at = p_created_at
         WHERE chat_assignment.conversation_id = c.id AND ended_at IS NULL
           AND accepted_at IS NOT NULL AND first_reply_at IS NULL;
    END IF;
    RETURN QUERY SELECT v_id, c.id, v_seq, v_public_seq, c.name;
END
$$;
"""

DROP = "DROP FUNCTION IF EXISTS chat_post_message(bigint, bigint, integer, text[], text, bigint, text, text, text, text, timestamptz, integer, boolean);"


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("chat", "0007_merge_attachments_encryption")]

    operations = [migrations.RunPython(create, drop)]
