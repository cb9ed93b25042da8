"""Django's admin app with the node's admin site as the default one (``admin.site``)."""

from django.contrib.admin.apps import AdminConfig


class ProvisionAdminConfig(AdminConfig):
    default_site = "provision.admin_site.ProvisionAdminSite"
