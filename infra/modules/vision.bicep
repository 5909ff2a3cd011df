// The Custom Vision training and prediction accounts (the optional Computer Vision account is ./moderation.bicep).
// Why custom subdomains: Microsoft Entra ID (keyless) access to Azure AI services works only on
// https://<subdomain>.cognitiveservices.azure.com/, never on the regional endpoint.

param location string
param tags object = {}

@description('Name (and custom subdomain) of the Custom Vision training account.')
param trainingName string

@description('Name (and custom subdomain) of the Custom Vision prediction account.')
param predictionName string

@description('Pricing tier of both Custom Vision accounts: F0 (free: 2 projects, 2 predictions/s) or S0.')
@allowed(['F0', 'S0'])
param sku string = 'S0'

@description('true: keys are switched off, every caller must use Microsoft Entra ID (Cognitive Services User role).')
param disableLocalAuth bool = false

resource training 'Microsoft.CognitiveServices/accounts@2024-10-01' = {
  // checkov:skip=CKV_AZURE_236: Keys are the disableLocalAuth parameter: the cvops pipelines still authenticate with keys.
  // checkov:skip=CKV_AZURE_134: The Function App (Flex, no virtual network) and the operator's cvops call it over the internet, with Entra ID.
  name: trainingName
  location: location
  tags: tags
  kind: 'CustomVision.Training'
  sku: {
    name: sku
  }
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    customSubDomainName: trainingName
    disableLocalAuth: disableLocalAuth
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
    }
  }
}

resource prediction 'Microsoft.CognitiveServices/accounts@2024-10-01' = {
  // checkov:skip=CKV_AZURE_236: Keys are the disableLocalAuth parameter: the cvops pipelines still authenticate with keys.
  // checkov:skip=CKV_AZURE_134: The Function App (Flex, no virtual network) and the operator's cvops call it over the internet, with Entra ID.
  name: predictionName
  location: location
  tags: tags
  kind: 'CustomVision.Prediction'
  sku: {
    name: sku
  }
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    customSubDomainName: predictionName
    disableLocalAuth: disableLocalAuth
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
    }
  }
}

output trainingId string = training.id
output trainingName string = training.name
output trainingEndpoint string = training.properties.endpoint
output predictionId string = prediction.id
output predictionName string = prediction.name
output predictionEndpoint string = prediction.properties.endpoint
