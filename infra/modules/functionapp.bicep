// The Function App on Flex Consumption (Python 3.11) and every app setting it reads.
//
// The `appSettings` array below is the one place where the app's settings are set. tests/test_infra_settings.py
// parses it and checks it against the catalogue in functions/settings.py, both ways: a setting the code reads but the
// Bicep forgets, or a setting set here that nothing reads, fails the test rather than failing in Azure at run time.
// Keep each entry as `{ name: '<literal>', value: <expression> }` so the test can read it without the Bicep CLI.

param location string
param tags object = {}

@description('Name of the Function App (also its default host name).')
param name string

@description('Name of the Flex Consumption plan.')
param planName string

@description('Resource id of the user-assigned identity the app runs as.')
param identityId string

@description('Client id of that identity: identity-based connections and DefaultAzureCredential pick it by this id.')
param identityClientId string

@description('Name of the storage account (host storage and the app\'s data).')
param storageAccountName string

@description('Blob endpoint of the storage account, e.g. https://<name>.blob.core.windows.net/')
param blobEndpoint string

@description('Queue endpoint of the storage account, e.g. https://<name>.queue.core.windows.net/')
param queueEndpoint string

@description('Container that holds the deployed app package (Flex Consumption deployment storage).')
param deploymentContainerName string

@description('Application Insights connection string (local auth is off on the component).')
param appInsightsConnectionString string

@description('Container names, keyed by role: incoming, accepted, review, rejected, quarantine, results.')
param containers object

@description('Name of the backlog queue.')
param backlogQueueName string

@description('Custom Vision prediction endpoint.')
param predictionEndpoint string

@description('ARM id of the Custom Vision prediction resource (iterations are published to it).')
param predictionResourceId string

@description('Key Vault reference for the prediction key, or empty for keyless access.')
param predictionKeyReference string = ''

@description('Moderation endpoint (Computer Vision or Content Safety, as moderationApi says); empty switches moderation off.')
param moderationEndpoint string = ''

@description('Key Vault reference for the Computer Vision key, or empty for keyless access.')
param moderationKeyReference string = ''

@description('Id of the Custom Vision project whose published iteration classifies images (known after `cvops apply`).')
param projectId string = ''

@description('Publish name of the iteration to use (known after `cvops publish`).')
param publishName string = ''

@description('Routing policy: inline JSON, or a path to a YAML/JSON file relative to the app root.')
param policy string = 'policy.yaml'

@description('true: predictions are stored in the Custom Vision project; false: no-store calls.')
param storePredictions bool = false

@description('CVOPS_MODEL: an exported ONNX model that classifies in-process (a path in the package or az://container/blob); empty: the Prediction API.')
param model string = ''

@description('CVOPS_MODEL_CONTRACT: custom-vision or azureml-automl when the model\'s files cannot say; empty: recognised from the files.')
@allowed(['', 'custom-vision', 'azureml-automl'])
param modelContract string = ''

@description('true: the incoming blob is deleted after its copy is verified.')
param moveSource bool = false

@description('Client-side pacing of prediction calls per second and instance.')
param predictionTps string = '2.50'

@description('CVOPS_SLICE_DEPTH: folders of the blob name each result record names as its slice (blob.slice).')
@minValue(1)
@maxValue(16)
param sliceDepth int = 1

@description('Which moderation API scores images: computer-vision (Image Analysis 3.2) or content-safety.')
@allowed(['computer-vision', 'content-safety'])
param moderationApi string = 'computer-vision'

@description('Client-side pacing of moderation calls per second and instance.')
param moderationTps string = '2.50'

@description('Most instances the app scales out to. With predictionTps, this bounds the calls per second.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Memory per instance in MB. Images are read whole into memory.')
@allowed([512, 2048, 4096])
param instanceMemoryMB int = 2048

@description('true: spread instances over availability zones (the region must offer them for Flex Consumption).')
param zoneRedundant bool = false

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225: Zone redundancy is the zoneRedundant parameter (not every Flex Consumption region has zones).
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true
    zoneRedundant: zoneRedundant
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_222: Event Grid delivers blob events to the app's public webhook; the webhook checks its system key.
  // checkov:skip=CKV_AZURE_17: Event Grid's webhook delivery presents no client certificate; it authenticates with the extension key.
  // checkov:skip=CKV_AZURE_212: Flex Consumption scales from zero by design; always-ready instances are a cost the operator opts into.
  // checkov:skip=CKV_AZURE_213: Flex Consumption instances are started per event, not kept behind a health-probed pool; the host reports to Application Insights.
  name: name
  location: location
  tags: tags
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identityId}': {}
    }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    // Event Grid delivers blob events to the app's webhook over the internet.
    publicNetworkAccess: 'Enabled'
    keyVaultReferenceIdentity: identityId
    siteConfig: {
      minTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      appSettings: [
        // Host-owned: the Functions host's own storage, identity-based.
        { name: 'AzureWebJobsStorage__accountName', value: storageAccountName }
        { name: 'AzureWebJobsStorage__credential', value: 'managedidentity' }
        { name: 'AzureWebJobsStorage__clientId', value: identityClientId }
        // Host-owned: telemetry with Entra ID (the component has local auth off).
        { name: 'APPLICATIONINSIGHTS_CONNECTION_STRING', value: appInsightsConnectionString }
        { name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING', value: 'ClientId=${identityClientId};Authorization=AAD' }
        // SDK-owned: DefaultAzureCredential picks the user-assigned identity by this client id.
        { name: 'AZURE_CLIENT_ID', value: identityClientId }
        // The triggers' and outputs' storage connection (functions/settings.py STORAGE_CONNECTION), identity-based.
        { name: 'CVOPS_STORAGE__blobServiceUri', value: blobEndpoint }
        { name: 'CVOPS_STORAGE__queueServiceUri', value: queueEndpoint }
        { name: 'CVOPS_STORAGE__credential', value: 'managedidentity' }
        { name: 'CVOPS_STORAGE__clientId', value: identityClientId }
        // The catalogue in functions/settings.py.
        { name: 'VISION_PREDICTION_ENDPOINT', value: predictionEndpoint }
        { name: 'VISION_PREDICTION_KEY', value: predictionKeyReference }
        { name: 'VISION_PREDICTION_RESOURCE_ID', value: predictionResourceId }
        { name: 'VISION_PROJECT_ID', value: projectId }
        { name: 'VISION_PUBLISH_NAME', value: publishName }
        { name: 'VISION_MODERATION_ENDPOINT', value: moderationEndpoint }
        { name: 'VISION_MODERATION_KEY', value: moderationKeyReference }
        { name: 'CVOPS_INCOMING_CONTAINER', value: containers.incoming }
        { name: 'CVOPS_ACCEPTED_CONTAINER', value: containers.accepted }
        { name: 'CVOPS_REVIEW_CONTAINER', value: containers.review }
        { name: 'CVOPS_REJECTED_CONTAINER', value: containers.rejected }
        { name: 'CVOPS_QUARANTINE_CONTAINER', value: containers.quarantine }
        { name: 'CVOPS_RESULTS_CONTAINER', value: containers.results }
        { name: 'CVOPS_BACKLOG_QUEUE', value: backlogQueueName }
        { name: 'CVOPS_POLICY', value: policy }
        { name: 'CVOPS_STORE_PREDICTIONS', value: storePredictions ? 'true' : 'false' }
        { name: 'CVOPS_MODEL', value: model }
        { name: 'CVOPS_MODEL_CONTRACT', value: modelContract }
        { name: 'CVOPS_MOVE_SOURCE', value: moveSource ? 'true' : 'false' }
        { name: 'CVOPS_PREDICTION_TPS', value: predictionTps }
        { name: 'CVOPS_SLICE_DEPTH', value: string(sliceDepth) }
        { name: 'CVOPS_MODERATION_API', value: moderationApi }
        { name: 'CVOPS_MODERATION_TPS', value: moderationTps }
      ]
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${blobEndpoint}${deploymentContainerName}'
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        instanceMemoryMB: instanceMemoryMB
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
}

// No FTP or basic-auth publishing: code is deployed with an Entra ID token (az functionapp deployment).
resource ftpPolicy 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmPolicy 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'scm'
  properties: {
    allow: false
  }
}

output id string = site.id
output name string = site.name
output defaultHostName string = site.properties.defaultHostName
