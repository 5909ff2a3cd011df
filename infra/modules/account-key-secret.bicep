// One Azure AI services account key, copied into a Key Vault secret inside the deployment.
// Why a module: the copy happens with listKeys() on the Azure side, so the key never passes through a parameter,
// an output or the operator's shell; and the optional Computer Vision key is one conditional module call.

@description('Name of the existing Key Vault.')
param vaultName string

@description('Name of the existing Azure AI services account whose key1 is stored.')
param accountName string

@description('Name of the secret.')
param secretName string

@description('What the secret holds, shown in the portal.')
param contentType string

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: vaultName
}

resource account 'Microsoft.CognitiveServices/accounts@2024-10-01' existing = {
  name: accountName
}

resource secret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  // checkov:skip=CKV_AZURE_41: A copy of an account key, which has no expiry: rotate by regenerating key1 and deploying again.
  parent: vault
  name: secretName
  properties: {
    contentType: contentType
    value: account.listKeys().key1
  }
}

// A URI without a version: the app picks up a rotated key on its next Key Vault reference refresh.
output uri string = '${vault.properties.vaultUri}secrets/${secret.name}'
