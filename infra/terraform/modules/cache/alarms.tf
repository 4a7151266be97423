# Per-node alarms: CloudWatch publishes ElastiCache metrics per member cluster,
# whose ids are the replication group id plus -001, -002, ...
locals {
  member_cluster_ids = [for index in range(var.num_cache_clusters) : format("%s-%03d", var.name, index + 1)]

  node_alarms = {
    engine-cpu = {
      metric      = "EngineCPUUtilization"
      statistic   = "Average"
      threshold   = var.cpu_alarm_percent
      description = "Redis engine thread CPU above ${var.cpu_alarm_percent}%: requests queue behind it and cache latency rises."
    }
    memory = {
      metric      = "DatabaseMemoryUsagePercentage"
      statistic   = "Average"
      threshold   = var.memory_alarm_percent
      description = "Redis memory above ${var.memory_alarm_percent}% of maxmemory: evictions are next."
    }
    evictions = {
      metric      = "Evictions"
      statistic   = "Sum"
      threshold   = var.evictions_alarm_threshold
      description = "Redis is evicting live recommendations: the node is too small for the working set, so the hit ratio falls."
    }
  }
}

resource "aws_cloudwatch_metric_alarm" "node" {
  for_each = {
    for pair in setproduct(local.member_cluster_ids, keys(local.node_alarms)) :
    "${pair[0]}-${pair[1]}" => merge(local.node_alarms[pair[1]], { cluster_id = pair[0] })
  }

  alarm_name          = each.key
  alarm_description   = each.value.description
  namespace           = "AWS/ElastiCache"
  metric_name         = each.value.metric
  dimensions          = { CacheClusterId = each.value.cluster_id }
  statistic           = each.value.statistic
  period              = 300
  evaluation_periods  = 3
  comparison_operator = "GreaterThanThreshold"
  threshold           = each.value.threshold
  treat_missing_data  = "notBreaching"
  alarm_actions       = [var.alarm_topic_arn]
  ok_actions          = [var.alarm_topic_arn]

  depends_on = [aws_elasticache_replication_group.main]
}
