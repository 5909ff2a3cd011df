// Only when keys are still used (visionAuth = 'keyVault'): a Key Vault holding the Custom Vision prediction key
// and the Computer Vision key, read by the Function App through Key Vault references with its managed identity.
// The keys are copied in by ./account-key-secret.bicep, on the Azure side.

param location string
param tags object = {}

@description('Name of the vault: 3-24 letters, digits and hyphens, globally unique.')
@minLength(3)
@maxLength(24)
param name string

@description('Tenant of the identities that read it.')
param tenantId string = subscription().tenantId

@description('Name of the Custom Vision prediction account whose key is stored.')
param predictionAccountName string

@description('Name of the Computer Vision account whose key is stored; empty stores none.')
param moderationAccountName string = ''

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  // checkov:skip=CKV_AZURE_109: The Function App (Flex, no virtual network) resolves its Key Vault references over the internet.
  // checkov:skip=CKV_AZURE_189: Same reason; reads need the Key Vault Secrets User role (RBAC authorization).
  name: name
  location: location
  tags: tags
  properties: {
    tenantId: tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
    // The Function App (Flex Consumption, no virtual network) reads it over the internet.
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

module predictionKey 'account-key-secret.bicep' = {
  name: 'secret-vision-prediction-key'
  params: {
    vaultName: vault.name
    accountName: predictionAccountName
    secretName: 'vision-prediction-key'
    contentType: 'Custom Vision prediction key'
  }
}

module moderationKey 'account-key-secret.bicep' = if (!empty(moderationAccountName)) {
  name: 'secret-vision-moderation-key'
  params: {
    vaultName: vault.name
    accountName: moderationAccountName
    secretName: 'vision-moderation-key'
    contentType: 'Computer Vision key'
  }
}

output id string = vault.id
output name string = vault.name
output predictionSecretUri string = predictionKey.outputs.uri
output moderationSecretUri string = empty(moderationAccountName) ? '' : moderationKey.outputs.uri
