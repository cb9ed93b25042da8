from django.urls import path

from orders import api

urlpatterns = [
    path("new_order", api.NewOrderApi.as_view(), name="new-order"),
    path("orders", api.SeedOrderApi.as_view(), name="seed-orders"),
    path("tx_status", api.TxStatusApi.as_view(), name="tx-status"),
    path("verify_account", api.VerifyAccountApi.as_view(), name="verify-account"),
]
