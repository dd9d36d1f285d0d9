from django.apps import AppConfig


class ComplianceConfig(AppConfig):
    name = "compliance"
    verbose_name = "Compliance"

    def ready(self) -> None:
        # Registered here rather than imported by chat: chat is the core and knows nothing of
        # compliance; the pipeline runs its filters before a message is stored or broadcast.
        from chat import hooks, pipeline
        from compliance import archive, services

        pipeline.register_text_filter(services.mask_chat_text, cached=services.mask_chat_text_cached)

        # Failed logins and lockouts: django-axes and django.contrib.auth report them only as
        # signals, so the audit hooks in there (compliance.lockout).
        from axes.signals import user_locked_out
        from django.contrib.auth.signals import user_login_failed

        from compliance import lockout

        user_login_failed.connect(lockout.audit_login_failed, dispatch_uid="compliance-login-failed")
        user_locked_out.connect(lockout.audit_locked_out, dispatch_uid="compliance-locked-out")
        # Back-office changes are audited from Django's own admin log (compliance.admin_audit).
        from django.contrib.admin.models import LogEntry
        from django.db.models.signals import post_save

        from compliance import admin_audit

        post_save.connect(admin_audit.record_admin_change, sender=LogEntry, dispatch_uid="compliance-admin-log")
        # An ended conversation's transcript goes to the archive (a Celery task, after commit).
        hooks.register_on_conversation_ended(archive.on_conversation_ended)
        # Bad FIELD_ENCRYPTION_KEYS stop the start, not the first save of a credential.
        from django.core.checks import register

        from compliance import encryption

        register(encryption.check_keys)
