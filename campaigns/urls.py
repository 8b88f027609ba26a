from django.urls import path

from campaigns import views

app_name = "campaigns"

urlpatterns = [
    path("", views.index, name="index"),
    path("new/", views.create, name="create"),
    path("home-fragment/", views.home_fragment, name="home-fragment"),
    # The public archive (off unless CAMPAIGNS_ARCHIVE): published campaigns with fallback data.
    path("archive/", views.archive, name="archive"),
    path("archive/<int:pk>/", views.archive_item, name="archive-item"),
    path("archive/feed.<str:kind>", views.archive_feed, name="archive-feed"),
    path("<int:pk>/", views.detail, name="detail"),
    path("<int:pk>/progress/", views.progress_fragment, name="progress"),
    path("<int:pk>/count/", views.audience_count, name="count"),
    path("<int:pk>/test/", views.test_send, name="test-send"),
    path("<int:pk>/spam-check/", views.spam_check, name="spam-check"),
    path("<int:pk>/send/", views.send, name="send"),
    path("<int:pk>/schedule/", views.schedule, name="schedule"),
    path("<int:pk>/report/", views.report, name="report"),
    path("<int:pk>/report.csv", views.report_csv, name="report-csv"),
    path("<int:pk>/report/people/<str:figure>/", views.report_people, name="report-people"),
    path("<int:pk>/resend/", views.resend, name="resend"),
    path("<int:pk>/do/<str:action>/", views.action, name="action"),
    path("<int:pk>/<str:step>/", views.step, name="step"),
]
