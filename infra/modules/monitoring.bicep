// Logs and traces: a Log Analytics workspace and a workspace-based Application Insights component.
// Local auth is off: the Function App sends telemetry with its managed identity (Monitoring Metrics Publisher),
// so no instrumentation key can be used from elsewhere to write into it.

param location string
param tags object = {}

@description('Name of the Log Analytics workspace.')
param workspaceName string

@description('Name of the Application Insights component.')
param appInsightsName string

@description('Days logs are kept.')
@minValue(30)
@maxValue(730)
param retentionDays int = 30

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: workspaceName
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: retentionDays
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: appInsightsName
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspace.id
    DisableLocalAuth: true
  }
}

output appInsightsId string = appInsights.id
output appInsightsName string = appInsights.name
// The connection string holds only the ingestion endpoint and an instrumentation id; with local auth off
// it cannot write telemetry without an Entra token, so it is not a secret.
output connectionString string = appInsights.properties.ConnectionString
