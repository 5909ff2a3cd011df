// Alerts on how images are routed: a log search alert (scheduled query rule) on the share sent to review and one on
// the share quarantined, per slice (the blob name's first folder), over the app's outcome lines in Application Insights.
//
// The app logs one line per image, `cvops.outcome {json}` (functions/outcome_log.py says why the fields travel in the
// message: the Python worker forwards only the message text to Application Insights unless OpenTelemetry is on).
// tests/test_infra_alerts.py checks that these queries read only fields the app logs.

param location string
param tags object = {}

@description('Prefix of the alert rules\' names.')
param namePrefix string

@description('Resource id of the Application Insights component the Function App logs to.')
param appInsightsId string

@description('Alert when more than this percentage of a slice\'s images goes to review in one window.')
@minValue(1)
@maxValue(100)
param reviewSharePercent int = 30

@description('Alert when more than this percentage of a slice\'s images is quarantined in one window.')
@minValue(1)
@maxValue(100)
param quarantineSharePercent int = 5

@description('A slice is judged only with at least this many images in the window (a handful of images says nothing).')
@minValue(1)
param minImages int = 50

@description('How much time each evaluation looks back over (ISO 8601 duration).')
param windowSize string = 'PT1H'

@description('How often the rules run (ISO 8601 duration, at most windowSize).')
param evaluationFrequency string = 'PT15M'

@description('Resource id of an action group to notify (mail, SMS, webhook); empty: the alerts show in the portal only.')
param actionGroupId string = ''

// One outcome line per image and delivery; a duplicate delivery repeats an earlier decision, so it is left out.
// host.json samples traces (adaptive sampling excludes only requests and exceptions): each kept trace stands for
// itemCount of them, so images are counted with sum(itemCount), never count().
var outcomes = 'traces | where message startswith "cvops.outcome " | extend d = parse_json(substring(message, strlen("cvops.outcome "))) | where tobool(d.duplicate) == false'

var rules = [
  {
    key: 'review'
    title: 'review share'
    outcome: 'review'
    percent: reviewSharePercent
    severity: 3
    description: 'More than ${reviewSharePercent}% of a slice\'s images (at least ${minImages}) went to review in ${windowSize}: the model is unsure of them (new backgrounds, a new camera). Look at the slice in `cvops monitor --by prefix`.'
  }
  {
    key: 'quarantine'
    title: 'quarantine share'
    outcome: 'quarantine'
    percent: quarantineSharePercent
    severity: 2
    description: 'More than ${quarantineSharePercent}% of a slice\'s images (at least ${minImages}) were quarantined in ${windowSize}: unreadable uploads, or a service refusing them. The result records\' reasons say which.'
  }
]

resource alert 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = [for rule in rules: {
  name: '${namePrefix}-${rule.key}-share'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: '${namePrefix}: ${rule.title} above ${rule.percent}%'
    description: rule.description
    severity: rule.severity
    enabled: true
    scopes: [
      appInsightsId
    ]
    evaluationFrequency: evaluationFrequency
    windowSize: windowSize
    autoMitigate: true
    criteria: {
      allOf: [
        {
          query: '${outcomes} | summarize images = sum(itemCount), matched = sumif(itemCount, tostring(d.outcome) == "${rule.outcome}") by slice = tostring(d.slice) | extend share_percent = 100.0 * matched / images | where images >= ${minImages} and share_percent > ${rule.percent}'
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          dimensions: [
            {
              name: 'slice'
              operator: 'Include'
              values: [
                '*'
              ]
            }
          ]
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    actions: {
      actionGroups: empty(actionGroupId) ? [] : [
        actionGroupId
      ]
    }
  }
}]

output ruleNames array = [for (rule, i) in rules: alert[i].name]
