// cvops on Azure: storage and its containers, Custom Vision training and prediction, the routing Function App on Flex
// Consumption with a user-assigned identity, monitoring and its alerts, the Event Grid system topic, and the role assignments that let
// everything run without keys. One module per concern, in ./modules.
//
// The Event Grid subscription that feeds the blob trigger is deployed by ./blob-events.bicep once the app's code is
// running (see deploy.sh): its webhook needs the `blobs_extension` system key, which exists only after the blob
// extension has started.
targetScope = 'resourceGroup'

@description('Short prefix of every resource name (lowercase letters and digits).')
@minLength(2)
@maxLength(10)
param namePrefix string = 'cvops'

@description('Region of every resource. Flex Consumption and Custom Vision must both be offered there.')
param location string = resourceGroup().location

@description('Tags on every resource.')
param tags object = {
  app: 'cvops'
}

@description('Custom Vision pricing tier (training and prediction): F0 free (2 projects, 2 predictions/s) or S0.')
@allowed(['F0', 'S0'])
param visionSku string = 'S0'

@description('true: also create a moderation account (moderationApi says which kind) and switch moderation on.')
param moderation bool = false

@description('CVOPS_MODERATION_API: computer-vision (a Computer Vision account, Image Analysis 3.2 adult/racy/gore scores; retires 2028-09-25) or content-safety (an Azure AI Content Safety account, severities per category; its successor). The policy\'s bands must be on that API\'s scale (docs/policy.md).')
@allowed(['computer-vision', 'content-safety'])
param moderationApi string = 'computer-vision'

@description('Moderation pricing tier: F0, or paid (S1 for Computer Vision, S0 for Content Safety).')
@allowed(['F0', 'S1'])
param moderationSku string = 'S1'

@description('How the Function App calls Custom Vision and Computer Vision. keyless: its managed identity (Cognitive Services User), the keys settings stay empty. keyVault: keys, read through Key Vault references.')
@allowed(['keyless', 'keyVault'])
param visionAuth string = 'keyless'

@description('true: switch the vision accounts\' keys off (only with visionAuth keyless, and only once every caller uses Entra ID: the cvops pipelines authenticate with keys today).')
param disableLocalAuth bool = false

@description('Storage replication.')
@allowed(['Standard_LRS', 'Standard_ZRS', 'Standard_GRS', 'Standard_RAGRS', 'Standard_GZRS', 'Standard_RAGZRS'])
param storageSku string = 'Standard_ZRS'

@description('Object id of the user, group or service principal that runs cvops; empty grants no data roles.')
param operatorPrincipalId string = ''

@description('Type of that principal.')
@allowed(['User', 'ServicePrincipal', 'Group'])
param operatorPrincipalType string = 'User'

@description('Id of the Custom Vision project the app classifies with; known after `cvops apply`, then deploy again.')
param projectId string = ''

@description('Publish name of the iteration the app uses; known after `cvops publish`, then deploy again.')
param publishName string = ''

@description('Routing policy: inline JSON, or a path to a YAML/JSON file relative to the app root.')
param policy string = 'policy.yaml'

@description('true: the incoming blob is deleted once its copy is verified.')
param moveSource bool = false

@description('CVOPS_SLICE_DEPTH: folders of the blob name each result record names as its slice, what cvops monitor and queries group images by (site-3/ at 1, site-3/camera-b/ at 2).')
@minValue(1)
@maxValue(16)
param sliceDepth int = 1

@description('true: predictions are stored in the Custom Vision project (classify_image); false: no-store calls.')
param storePredictions bool = false

@description('CVOPS_MODEL: an exported ONNX model (cvops export) that classifies in-process, as a path in the app package or az://container/blob in the app storage; empty: the Prediction API.')
param model string = ''

@description('CVOPS_MODEL_CONTRACT: custom-vision or azureml-automl when the model\'s files cannot say; empty: recognised from the files.')
@allowed(['', 'custom-vision', 'azureml-automl'])
param modelContract string = ''

@description('Prediction calls per second per instance, e.g. \'2.5\'; empty: the tier\'s quota (F0: 2, S0: 10) shared by maximumInstanceCount instances.')
param predictionTps string = ''


@description('Moderation calls per second per instance; empty: the API\'s quota shared by maximumInstanceCount instances (Computer Vision F0: 20 a minute, S1: 10/s; Content Safety: 1,000 per 10 s on F0 and S0).')
param moderationTps string = ''


@description('Most Function App instances. Instances x predictionTps must stay within the prediction quota.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 4

@description('true: the Function App plan is zone redundant (the region must offer zones for Flex Consumption).')
param zoneRedundant bool = false

@description('Container of accepted images (CVOPS_ACCEPTED_CONTAINER). A deployment made before the rename keeps its images where they are by passing \'classified\'; see docs/azure.md.')
@minLength(3)
@maxLength(63)
param acceptedContainer string = 'accepted'

@description('Alert when more than this percentage of a slice\'s images goes to review in an hour (modules/alerts.bicep).')
@minValue(1)
@maxValue(100)
param reviewShareAlertPercent int = 30

@description('Alert when more than this percentage of a slice\'s images is quarantined in an hour.')
@minValue(1)
@maxValue(100)
param quarantineShareAlertPercent int = 5

@description('Least images a slice needs in the hour before either alert judges it.')
@minValue(1)
param alertMinImages int = 50

@description('Resource id of an action group the alerts notify; empty: they show in the portal only.')
param alertActionGroupId string = ''

// Container and queue names. The *_CONTAINER defaults in functions/settings.py must match (tests/test_infra_settings.py).
var containers = {
  training: 'training'
  holdout: 'holdout'
  incoming: 'incoming'
  accepted: acceptedContainer
  review: 'review'
  rejected: 'rejected'
  quarantine: 'quarantine'
  results: 'results'
}
var deploymentContainerName = 'app-package'
var deadLetterContainerName = 'eventgrid-deadletter'
var backlogQueueName = 'cvops-backlog'

var token = toLower(uniqueString(resourceGroup().id, namePrefix))
var names = {
  identity: 'id-${namePrefix}-${token}'
  storage: take('st${namePrefix}${token}', 24)
  training: 'cvt-${namePrefix}-${token}'
  prediction: 'cvp-${namePrefix}-${token}'
  moderation: 'cv-${namePrefix}-${token}'
  contentSafety: 'cs-${namePrefix}-${token}'
  workspace: 'log-${namePrefix}-${token}'
  appInsights: 'appi-${namePrefix}-${token}'
  plan: 'plan-${namePrefix}-${token}'
  functionApp: 'func-${namePrefix}-${token}'
  systemTopic: 'evgt-${namePrefix}-${token}'
  keyVault: take('kv-${namePrefix}-${token}', 24)
}
var keyless = visionAuth == 'keyless'
// Keys can be switched off only when the Function App does not need them.
var keysOff = disableLocalAuth && keyless
var contentSafety = moderationApi == 'content-safety'
var moderationName = moderation ? (contentSafety ? contentSafetyAccount.outputs.name : moderationAccount.outputs.name) : ''
var moderationEndpoint = moderation ? (contentSafety ? contentSafetyAccount.outputs.endpoint : moderationAccount.outputs.endpoint) : ''
// Each instance paces itself (CVOPS_PREDICTION_TPS), so the quota is shared: every instance gets quota / instances,
// written with two decimals (Bicep has no floats). Stored predictions allow 10/s on S0, no-store 20/s: 10 is safe for both.
var predictionHundredths = max(1, (visionSku == 'F0' ? 200 : 1000) / maximumInstanceCount)
var tps = !empty(predictionTps) ? predictionTps : '${predictionHundredths / 100}.${padLeft(string(predictionHundredths % 100), 2, '0')}'
// Computer Vision F0 allows 20 calls a minute (0.33/s), S1 10/s; Content Safety 1,000 per 10 s (100/s) on F0 and S0.
var moderationHundredths = max(1, (contentSafety ? 10000 : (moderationSku == 'F0' ? 33 : 1000)) / maximumInstanceCount)
var moderationRate = !empty(moderationTps) ? moderationTps : '${moderationHundredths / 100}.${padLeft(string(moderationHundredths % 100), 2, '0')}'


module identity 'modules/identity.bicep' = {
  name: 'identity'
  params: {
    name: names.identity
    location: location
    tags: tags
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  params: {
    name: names.storage
    location: location
    tags: tags
    skuName: storageSku
    containerNames: [
      containers.training
      containers.holdout
      containers.incoming
      containers.accepted
      containers.review
      containers.rejected
      containers.quarantine
      containers.results
      deploymentContainerName
      deadLetterContainerName
    ]
    queueNames: [
      backlogQueueName
    ]
  }
}

module vision 'modules/vision.bicep' = {
  name: 'vision'
  params: {
    location: location
    tags: tags
    trainingName: names.training
    predictionName: names.prediction
    sku: visionSku
    disableLocalAuth: keysOff
  }
}

module moderationAccount 'modules/moderation.bicep' = if (moderation && !contentSafety) {
  name: 'moderation'
  params: {
    location: location
    tags: tags
    name: names.moderation
    kind: 'ComputerVision'
    sku: moderationSku
    disableLocalAuth: keysOff
  }
}

// Beside the Computer Vision one: switching moderationApi creates this account and points the app at it; the
// Computer Vision account of an earlier deployment stays until it is deleted (docs/retirement.md, step by step).
module contentSafetyAccount 'modules/moderation.bicep' = if (moderation && contentSafety) {
  name: 'content-safety'
  params: {
    location: location
    tags: tags
    name: names.contentSafety
    kind: 'ContentSafety'
    sku: moderationSku == 'F0' ? 'F0' : 'S0'
    disableLocalAuth: keysOff
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    location: location
    tags: tags
    workspaceName: names.workspace
    appInsightsName: names.appInsights
  }
}

module alerts 'modules/alerts.bicep' = {
  name: 'alerts'
  params: {
    location: location
    tags: tags
    namePrefix: namePrefix
    appInsightsId: monitoring.outputs.appInsightsId
    reviewSharePercent: reviewShareAlertPercent
    quarantineSharePercent: quarantineShareAlertPercent
    minImages: alertMinImages
    actionGroupId: alertActionGroupId
  }
}

module keyVault 'modules/keyvault.bicep' = if (!keyless) {
  name: 'keyvault'
  params: {
    location: location
    tags: tags
    name: names.keyVault
    predictionAccountName: vision.outputs.predictionName
    moderationAccountName: moderationName
  }
}

module functionApp 'modules/functionapp.bicep' = {
  name: 'functionapp'
  params: {
    location: location
    tags: tags
    name: names.functionApp
    planName: names.plan
    identityId: identity.outputs.id
    identityClientId: identity.outputs.clientId
    storageAccountName: storage.outputs.name
    blobEndpoint: storage.outputs.blobEndpoint
    queueEndpoint: storage.outputs.queueEndpoint
    deploymentContainerName: deploymentContainerName
    appInsightsConnectionString: monitoring.outputs.connectionString
    containers: containers
    backlogQueueName: backlogQueueName
    predictionEndpoint: vision.outputs.predictionEndpoint
    predictionResourceId: vision.outputs.predictionId
    predictionKeyReference: keyless ? '' : '@Microsoft.KeyVault(SecretUri=${keyVault.outputs.predictionSecretUri})'
    moderationEndpoint: moderationEndpoint
    moderationKeyReference: keyless || !moderation ? '' : '@Microsoft.KeyVault(SecretUri=${keyVault.outputs.moderationSecretUri})'
    projectId: projectId
    publishName: publishName
    policy: policy
    storePredictions: storePredictions
    model: model
    modelContract: modelContract
    moveSource: moveSource
    sliceDepth: sliceDepth
    predictionTps: tps
    moderationApi: moderationApi
    moderationTps: moderationRate
    maximumInstanceCount: maximumInstanceCount
    zoneRedundant: zoneRedundant
  }
  // The app starts reading its storage and secrets at once: give it its roles first.
  dependsOn: [
    roles
  ]
}

module systemTopic 'modules/eventgrid-topic.bicep' = {
  name: 'eventgrid-topic'
  params: {
    location: location
    tags: tags
    name: names.systemTopic
    storageAccountId: storage.outputs.id
  }
}

module roles 'modules/roles.bicep' = {
  name: 'roles'
  params: {
    appPrincipalId: identity.outputs.principalId
    storageAccountName: storage.outputs.name
    deadLetterContainerName: deadLetterContainerName
    topicPrincipalId: systemTopic.outputs.principalId
    appInsightsName: monitoring.outputs.appInsightsName
    trainingAccountName: vision.outputs.trainingName
    predictionAccountName: vision.outputs.predictionName
    moderationAccountName: moderationName
    keyless: keyless
    keyVaultName: keyless ? '' : keyVault.outputs.name
    operatorPrincipalId: operatorPrincipalId
    operatorPrincipalType: operatorPrincipalType
  }
}

// Outputs: names and endpoints only, never a key. deploy.sh and verify.sh read them.
output functionAppName string = functionApp.outputs.name
output storageAccountName string = storage.outputs.name
output storageAccountUrl string = storage.outputs.blobEndpoint
output systemTopicName string = systemTopic.outputs.name
output incomingContainer string = containers.incoming
output deadLetterContainer string = deadLetterContainerName
output containerNames array = [
  containers.training
  containers.holdout
  containers.incoming
  containers.accepted
  containers.review
  containers.rejected
  containers.quarantine
  containers.results
]
output backlogQueue string = backlogQueueName
output trainingAccountName string = vision.outputs.trainingName
output trainingEndpoint string = vision.outputs.trainingEndpoint
output predictionAccountName string = vision.outputs.predictionName
output predictionEndpoint string = vision.outputs.predictionEndpoint
output predictionResourceId string = vision.outputs.predictionId
output moderationEndpoint string = moderationEndpoint
output visionAuth string = visionAuth
output keysEnabled bool = !keysOff
