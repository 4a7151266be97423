# What users feel: failed requests and slow requests, seen at the load balancer.

resource "aws_cloudwatch_metric_alarm" "error_rate" {
  alarm_name          = "${var.name}-5xx-rate"
  alarm_description   = "More than ${var.error_rate_alarm_percent}% of requests answered 5xx (by the tasks or the load balancer)."
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.error_rate_alarm_percent
  evaluation_periods  = 3
  treat_missing_data  = "notBreaching"
  alarm_actions       = [var.alarm_topic_arn]
  ok_actions          = [var.alarm_topic_arn]

  metric_query {
    id          = "error_rate"
    expression  = "100 * (FILL(target_5xx, 0) + FILL(elb_5xx, 0)) / requests"
    label       = "5xx responses (% of requests)"
    return_data = true
  }

  dynamic "metric_query" {
    for_each = {
      target_5xx = "HTTPCode_Target_5XX_Count"
      elb_5xx    = "HTTPCode_ELB_5XX_Count"
      requests   = "RequestCount"
    }

    content {
      id = metric_query.key

      metric {
        namespace   = "AWS/ApplicationELB"
        metric_name = metric_query.value
        period      = 300
        stat        = "Sum"
        dimensions  = { LoadBalancer = aws_lb.api.arn_suffix }
      }
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "p99_latency" {
  alarm_name          = "${var.name}-p99-latency"
  alarm_description   = "99th percentile of target response time above ${var.p99_latency_alarm_seconds}s: cache misses or Redis trouble."
  namespace           = "AWS/ApplicationELB"
  metric_name         = "TargetResponseTime"
  extended_statistic  = "p99"
  dimensions          = { LoadBalancer = aws_lb.api.arn_suffix, TargetGroup = aws_lb_target_group.api.arn_suffix }
  period              = 300
  evaluation_periods  = 3
  comparison_operator = "GreaterThanThreshold"
  threshold           = var.p99_latency_alarm_seconds
  treat_missing_data  = "notBreaching"
  alarm_actions       = [var.alarm_topic_arn]
  ok_actions          = [var.alarm_topic_arn]
}
