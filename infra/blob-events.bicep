// The Event Grid subscription that delivers new incoming blobs to the Function App's blob trigger.
//
// Deployed by deploy.sh after the app's code: the webhook URL carries the `blobs_extension` system key, which the
// Functions host creates when the blob extension starts. The key is read here with listKeys() and goes straight into
// the subscription: it is never a parameter, an output or a line in the operator's shell.
//
// The filter is what keeps the function from triggering itself: only BlobCreated events in the incoming container,
// and only from the write APIs of a new upload (PutBlob, PutBlockList, CopyBlob). The function's own writes go to
// other containers; FlushWithClose (Data Lake) and other APIs are ignored.
targetScope = 'resourceGroup'

@description('Name of the Function App (output functionAppName of main.bicep).')
param functionAppName string

@description('Name of the Event Grid system topic of the storage account (output systemTopicName).')
param systemTopicName string

@description('Name of the storage account (output storageAccountName).')
param storageAccountName string

@description('Container whose new blobs are classified (output incomingContainer).')
param incomingContainer string = 'incoming'

@description('Container for events that could not be delivered (output deadLetterContainer).')
param deadLetterContainer string = 'eventgrid-deadletter'

@description('Name of the blob-triggered function in the app (the Python function name, or @app.function_name).')
param functionName string = 'route_new_blob'

@description('Name of the subscription.')
param subscriptionName string = 'cvops-incoming'

resource site 'Microsoft.Web/sites@2024-04-01' existing = {
  name: functionAppName
}

resource host 'Microsoft.Web/sites/host@2024-04-01' existing = {
  parent: site
  name: 'default'
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource topic 'Microsoft.EventGrid/systemTopics@2022-06-15' existing = {
  name: systemTopicName
}

resource subscription 'Microsoft.EventGrid/systemTopics/eventSubscriptions@2022-06-15' = {
  parent: topic
  name: subscriptionName
  properties: {
    destination: {
      endpointType: 'WebHook'
      properties: {
        endpointUrl: 'https://${site.properties.defaultHostName}/runtime/webhooks/blobs?functionName=Host.Functions.${functionName}&code=${host.listKeys().systemKeys.blobs_extension}'
        maxEventsPerBatch: 1
        preferredBatchSizeInKilobytes: 64
      }
    }
    eventDeliverySchema: 'EventGridSchema'
    filter: {
      includedEventTypes: [
        'Microsoft.Storage.BlobCreated'
      ]
      subjectBeginsWith: '/blobServices/default/containers/${incomingContainer}/blobs/'
      advancedFilters: [
        {
          operatorType: 'StringIn'
          key: 'data.api'
          values: [
            'PutBlob'
            'PutBlockList'
            'CopyBlob'
          ]
        }
      ]
    }
    retryPolicy: {
      maxDeliveryAttempts: 30
      eventTimeToLiveInMinutes: 1440
    }
    // An event that cannot be delivered for a day is kept, not dropped: its blob can be re-queued through the backlog.
    deadLetterWithResourceIdentity: {
      identity: {
        type: 'SystemAssigned'
      }
      deadLetterDestination: {
        endpointType: 'StorageBlob'
        properties: {
          resourceId: storage.id
          blobContainerName: deadLetterContainer
        }
      }
    }
  }
}

output subscriptionName string = subscription.name
