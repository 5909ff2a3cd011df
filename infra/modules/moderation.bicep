// The optional Computer Vision account whose Image Analysis 3.2 adult/racy/gore scores feed the routing policy.
// A module of its own so that main.bicep can leave it out with one condition.

param location string
param tags object = {}

@description('Name and custom subdomain of the account (keyless access needs the subdomain).')
param name string

@description('Pricing tier: F0 or S1.')
@allowed(['F0', 'S1'])
param sku string = 'S1'

@description('true: keys are switched off, every caller must use Microsoft Entra ID (Cognitive Services User role).')
param disableLocalAuth bool = false

resource account 'Microsoft.CognitiveServices/accounts@2024-10-01' = {
  // checkov:skip=CKV_AZURE_236: Keys are the disableLocalAuth parameter: the cvops pipelines still authenticate with keys.
  // checkov:skip=CKV_AZURE_134: The Function App (Flex, no virtual network) calls it over the internet, with Entra ID.
  name: name
  location: location
  tags: tags
  kind: 'ComputerVision'
  sku: {
    name: sku
  }
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    customSubDomainName: name
    disableLocalAuth: disableLocalAuth
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
    }
  }
}

output id string = account.id
output name string = account.name
output endpoint string = account.properties.endpoint
