// The Event Grid system topic of the storage account: the source of BlobCreated events for the blob trigger.
// The subscription that delivers them to the Function App is made by ../blob-events.bicep, after the app's code is
// deployed (its webhook key exists only once the blob extension has started).
// The topic has its own identity so that undeliverable events can be dead-lettered into a container without keys.

param location string
param tags object = {}

@description('Name of the system topic.')
param name string

@description('Resource id of the storage account whose events it publishes.')
param storageAccountId string

resource topic 'Microsoft.EventGrid/systemTopics@2022-06-15' = {
  name: name
  location: location
  tags: tags
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    source: storageAccountId
    topicType: 'Microsoft.Storage.StorageAccounts'
  }
}

output id string = topic.id
output name string = topic.name
output principalId string = topic.identity.principalId
