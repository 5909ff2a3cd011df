// The Function App's user-assigned managed identity.
// Why user-assigned: role assignments can be made before the app exists (no chicken-and-egg with a system identity),
// and the same client id is written into every identity-based connection setting.

@description('Name of the identity.')
param name string

param location string
param tags object = {}

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = identity.id
output name string = identity.name
output clientId string = identity.properties.clientId
output principalId string = identity.properties.principalId
