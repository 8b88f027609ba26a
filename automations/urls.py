from django.urls import path

from automations import views

app_name = "automations"

urlpatterns = [
    path("", views.index, name="index"),
    path("new/", views.create, name="create"),
    path("recipes/<slug:slug>/", views.recipe, name="recipe"),
    path("contact/<int:contact_id>/runs/", views.contact_runs, name="contact-runs"),
    path("<int:pk>/", views.detail, name="detail"),
    path("<int:pk>/counts/", views.flow_counts, name="counts"),
    path("<int:pk>/status/", views.status, name="status"),
    path("<int:pk>/enrol/", views.enrol, name="enrol"),
    path("<int:pk>/runs/", views.runs, name="runs"),
    path("<int:pk>/runs/<int:run_id>/remove/", views.run_remove, name="run-remove"),
    path("<int:pk>/steps/", views.step_add, name="step-add"),
    path("<int:pk>/steps/<int:step_id>/", views.step_update, name="step-update"),
    path("<int:pk>/steps/<int:step_id>/delete/", views.step_delete, name="step-delete"),
    path("<int:pk>/steps/<int:step_id>/move/", views.step_move, name="step-move"),
]
