# Cloud Monitoring: the alert rules of deploy/alerts.yml as alert policies, and a dashboard.
# Both query with PromQL the metrics Managed Service for Prometheus ingests from /metrics
# (docs/deploy.md, "Alerts and the dashboard"); a test keeps each query equal to its rule in
# deploy/alerts.yml with the variables' defaults in place.

locals {
  alert_policies = {
    GardenerMaintainNotSucceeding = {
      display_name = "Gardener: maintain has not succeeded for 3 intervals"
      query        = "time() - max(gardener_last_success_timestamp_seconds{task=\"maintain\"}) > ${var.alert_maintain_silence_seconds} or absent(gardener_last_success_timestamp_seconds{task=\"maintain\"})"
      duration     = "300s"
      severity     = "CRITICAL"
      content      = "No `maintain` run has ended without an error for ${var.alert_maintain_silence_seconds} s (or none ever has, or /metrics is not ingested): stale jobs are not expired, complete ones not removed, no snapshot written. Look at the maintain function's logs and its Cloud Scheduler job."
    }
    GardenerPostprocessNotSucceeding = {
      display_name = "Gardener: no postprocess tick has succeeded"
      query        = "time() - max(gardener_last_success_timestamp_seconds{task=\"postprocess\"}) > ${var.alert_postprocess_silence_seconds} or absent(gardener_last_success_timestamp_seconds{task=\"postprocess\"})"
      duration     = "300s"
      severity     = "CRITICAL"
      content      = "No `postprocess` tick has ended without an error for ${var.alert_postprocess_silence_seconds} s: jobs in postProcessing are not carried to complete. Look at the postprocess function's logs and its Cloud Scheduler job."
    }
    GardenerDailyJobsLate = {
      display_name = "Gardener: yesterday's daily jobs are not complete"
      query        = "min by (experiment, datatype) (gardener_yesterday_complete) == 0 and on() hour() >= ${var.alert_daily_deadline_hour}"
      duration     = "900s"
      severity     = "WARNING"
      content      = "It is past ${var.alert_daily_deadline_hour}:00 UTC and yesterday's job of a source is not complete (not handed out yet, in flight or failed). `gardener jobs --experiment E --datatype D` shows it."
    }
    GardenerJobInFlightTooLong = {
      display_name = "Gardener: a job has been in flight longer than the tracker timeout"
      query        = "max by (experiment, datatype) (gardener_oldest_in_flight_age_seconds) > ${var.alert_in_flight_seconds}"
      duration     = "600s"
      severity     = "WARNING"
      content      = "The oldest run in flight of a source started more than ${var.alert_in_flight_seconds} s ago (the config's tracker.timeout): a parser heartbeats without finishing, or maintain does not expire it."
    }
    GardenerFailuresRising = {
      display_name = "Gardener: failures are rising"
      query        = "sum by (experiment, datatype) (increase(gardener_fail_total[1h])) >= ${var.alert_failures_min} and sum by (experiment, datatype) (increase(gardener_fail_total[1h])) > 2 * sum by (experiment, datatype) (increase(gardener_fail_total[1d] offset 1h)) / 24"
      duration     = "900s"
      severity     = "WARNING"
      content      = "At least ${var.alert_failures_min} jobs of a source failed in the last hour, more than twice the hourly average of the day before. `gardener jobs --state failed` lists them with their errors."
    }
    GardenerSnapshotStale = {
      display_name = "Gardener: no snapshot written lately"
      query        = "time() - max(gardener_last_success_timestamp_seconds{task=\"snapshot\"}) > ${var.alert_snapshot_stale_seconds}"
      duration     = "300s"
      severity     = "WARNING"
      content      = "maintain writes a snapshot to the snapshot bucket on each run; none has been written for ${var.alert_snapshot_stale_seconds} s. Look at the maintain function's logs (the bucket, its permissions)."
    }
  }

  # The dashboard's charts: (title, PromQL query, plot) in rows of two.
  dashboard_charts = [
    { title = "Throughput: jobs completed per hour", query = "sum by (datatype) (rate(gardener_completed_total[10m])) * 3600", plot = "LINE" },
    { title = "Jobs started per hour", query = "sum by (datatype) (rate(gardener_started_total[10m])) * 3600", plot = "LINE" },
    { title = "Failures per hour", query = "sum by (datatype) (rate(gardener_fail_total[10m])) * 3600", plot = "LINE" },
    { title = "Failed jobs waiting for a retry", query = "sum by (datatype) (gardener_jobs{state=\"failed\"})", plot = "LINE" },
    { title = "Jobs in flight by state", query = "sum by (state) (gardener_tasks_in_flight)", plot = "STACKED_AREA" },
    { title = "Oldest run in flight (hours)", query = "max by (datatype) (gardener_oldest_in_flight_age_seconds) / 3600", plot = "LINE" },
    { title = "Stream positions: days behind today", query = "(time() - max by (datatype, stream) (gardener_stream_position_timestamp_seconds)) / 86400", plot = "LINE" },
    { title = "Since the last success (minutes)", query = "(time() - max by (task) (gardener_last_success_timestamp_seconds)) / 60", plot = "LINE" },
  ]
}

resource "google_monitoring_alert_policy" "gardener" {
  for_each              = local.alert_policies
  display_name          = each.value.display_name
  combiner              = "OR"
  enabled               = var.alerts_enabled
  severity              = each.value.severity
  notification_channels = var.alert_notification_channels

  documentation {
    content   = each.value.content
    mime_type = "text/markdown"
  }

  conditions {
    display_name = each.value.display_name
    condition_prometheus_query_language {
      query               = each.value.query
      duration            = each.value.duration
      evaluation_interval = "60s"
      alert_rule          = each.key
      rule_group          = "gardener"
    }
  }

  depends_on = [google_project_service.apis]
}

resource "google_monitoring_dashboard" "gardener" {
  dashboard_json = jsonencode({
    displayName = "Gardener tracker (${var.name_prefix})"
    mosaicLayout = {
      columns = 12
      tiles = [
        for index, chart in local.dashboard_charts : {
          xPos   = (index % 2) * 6
          yPos   = floor(index / 2) * 4
          width  = 6
          height = 4
          widget = {
            title = chart.title
            xyChart = {
              dataSets = [{
                plotType        = chart.plot
                targetAxis      = "Y1"
                timeSeriesQuery = { prometheusQuery = chart.query }
              }]
            }
          }
        }
      ]
    }
  })

  depends_on = [google_project_service.apis]
}
