// Who may do what, with Microsoft Entra ID instead of keys.
//
// The Function App's identity:
//   Storage Blob Data Owner on the account: the blob trigger (Event Grid source) and the host need it.
//   Storage Queue Data Contributor on the account: the backlog queue and the blob trigger's poison queue.
//   Monitoring Metrics Publisher on Application Insights: telemetry with local auth off.
//   Cognitive Services User on the prediction (and moderation) account, when access is keyless.
//   Key Vault Secrets User on the vault, when keys are kept there.
// The Event Grid system topic's identity: Storage Blob Data Contributor on the dead-letter container only.
// The operator running `cvops` (optional): Storage Blob Data Contributor on the account (upload, user-delegation SAS for
// training) and Cognitive Services User on the training and prediction accounts (keyless CLI).

@description('Principal id of the Function App\'s identity.')
param appPrincipalId string

@description('Name of the storage account.')
param storageAccountName string

@description('Name of the container Event Grid dead-letters into.')
param deadLetterContainerName string

@description('Principal id of the Event Grid system topic\'s identity.')
param topicPrincipalId string

@description('Name of the Application Insights component.')
param appInsightsName string

@description('Name of the Custom Vision training account.')
param trainingAccountName string

@description('Name of the Custom Vision prediction account.')
param predictionAccountName string

@description('Name of the Computer Vision account; empty when there is none.')
param moderationAccountName string = ''

@description('true: the app calls the vision accounts with its identity (Cognitive Services User).')
param keyless bool = true

@description('Name of the Key Vault holding the keys; empty when there is none.')
param keyVaultName string = ''

@description('Principal id of the operator (user or CI service principal) running cvops; empty grants nothing.')
param operatorPrincipalId string = ''

@description('Type of that principal.')
@allowed(['User', 'ServicePrincipal', 'Group'])
param operatorPrincipalType string = 'User'

// Built-in role definition ids (the same in every tenant).
var roles = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageBlobDataContributor: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
  cognitiveServicesUser: 'a97b65f3-24c7-4388-baec-2e87135dc908'
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6'
}

var hasOperator = !empty(operatorPrincipalId)
var hasModeration = !empty(moderationAccountName)

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource deadLetterContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  name: '${storageAccountName}/default/${deadLetterContainerName}'
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

resource training 'Microsoft.CognitiveServices/accounts@2024-10-01' existing = {
  name: trainingAccountName
}

resource prediction 'Microsoft.CognitiveServices/accounts@2024-10-01' existing = {
  name: predictionAccountName
}

resource moderation 'Microsoft.CognitiveServices/accounts@2024-10-01' existing = if (hasModeration) {
  name: hasModeration ? moderationAccountName : 'unused'
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = if (!empty(keyVaultName)) {
  name: empty(keyVaultName) ? 'unused' : keyVaultName
}

resource appBlobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: storage
  name: guid(storage.id, appPrincipalId, roles.storageBlobDataOwner)
  properties: {
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataOwner)
  }
}

resource appQueueContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: storage
  name: guid(storage.id, appPrincipalId, roles.storageQueueDataContributor)
  properties: {
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataContributor)
  }
}

resource appMetricsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: appInsights
  name: guid(appInsights.id, appPrincipalId, roles.monitoringMetricsPublisher)
  properties: {
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
  }
}

resource appPredictionUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (keyless) {
  scope: prediction
  name: guid(prediction.id, appPrincipalId, roles.cognitiveServicesUser)
  properties: {
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.cognitiveServicesUser)
  }
}

resource appModerationUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (keyless && hasModeration) {
  scope: moderation
  name: guid(hasModeration ? moderation.id : 'none', appPrincipalId, roles.cognitiveServicesUser)
  properties: {
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.cognitiveServicesUser)
  }
}

resource appSecretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(keyVaultName)) {
  scope: vault
  name: guid(empty(keyVaultName) ? 'none' : vault.id, appPrincipalId, roles.keyVaultSecretsUser)
  properties: {
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsUser)
  }
}

resource topicDeadLetterWriter 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  scope: deadLetterContainer
  name: guid(deadLetterContainer.id, topicPrincipalId, roles.storageBlobDataContributor)
  properties: {
    principalId: topicPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)
  }
}

resource operatorBlobContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (hasOperator) {
  scope: storage
  name: guid(storage.id, operatorPrincipalId, roles.storageBlobDataContributor)
  properties: {
    principalId: operatorPrincipalId
    principalType: operatorPrincipalType
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)
  }
}

resource operatorQueueContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (hasOperator) {
  scope: storage
  name: guid(storage.id, operatorPrincipalId, roles.storageQueueDataContributor)
  properties: {
    principalId: operatorPrincipalId
    principalType: operatorPrincipalType
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataContributor)
  }
}

resource operatorTrainingUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (hasOperator) {
  scope: training
  name: guid(training.id, operatorPrincipalId, roles.cognitiveServicesUser)
  properties: {
    principalId: operatorPrincipalId
    principalType: operatorPrincipalType
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.cognitiveServicesUser)
  }
}

resource operatorPredictionUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (hasOperator) {
  scope: prediction
  name: guid(prediction.id, operatorPrincipalId, roles.cognitiveServicesUser)
  properties: {
    principalId: operatorPrincipalId
    principalType: operatorPrincipalType
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.cognitiveServicesUser)
  }
}
