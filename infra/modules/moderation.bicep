// The optional moderation account whose answers feed the routing policy: Computer Vision (Image Analysis 3.2
// adult/racy/gore scores, retiring 2028-09-25) or Azure AI Content Safety (severities per category, its successor).
// A module of its own so that main.bicep can leave it out with one condition.

param location string
param tags object = {}

@description('Name and custom subdomain of the account (keyless access needs the subdomain).')
param name string

@description('ComputerVision or ContentSafety.')
@allowed(['ComputerVision', 'ContentSafety'])
param kind string = 'ComputerVision'

@description('Pricing tier: F0, S1 (Computer Vision) or S0 (Content Safety).')
@allowed(['F0', 'S0', 'S1'])
param sku string = 'S1'

@description('true: keys are switched off, every caller must use Microsoft Entra ID (Cognitive Services User role).')
param disableLocalAuth bool = false

resource account 'Microsoft.CognitiveServices/accounts@2024-10-01' = {
  // checkov:skip=CKV_AZURE_236: Keys are the disableLocalAuth parameter: the cvops pipelines still authenticate with keys.
  // checkov:skip=CKV_AZURE_134: The Function App (Flex, no virtual network) calls it over the internet, with Entra ID.
  name: name
  location: location
  tags: tags
  kind: kind
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
