"""Microsoft's Custom Vision Python quickstart (image classification), step for step, with the official SDK only.

It is the quickstart as Microsoft publishes it ("Quickstart: Create an image classification project with the Custom
Vision client library"): create a project, two tags, upload 10 images per tag in one batch, train, poll until the
iteration is Completed, publish, classify a test image. Endpoint and keys come from the same environment variables the
quickstart uses, so the very same script runs against Azure or against the local service (`python -m emulator`):

    VISION_TRAINING_ENDPOINT, VISION_TRAINING_KEY, VISION_PREDICTION_KEY, VISION_PREDICTION_RESOURCE_ID

Two additions, both optional: QUICKSTART_IMAGES (the "Images" folder; default: next to this script) and
QUICKSTART_POLL_SECONDS (the quickstart waits 10 seconds between polls).
"""

import os
import time
import uuid

from azure.cognitiveservices.vision.customvision.prediction import CustomVisionPredictionClient
from azure.cognitiveservices.vision.customvision.training import CustomVisionTrainingClient
from azure.cognitiveservices.vision.customvision.training.models import ImageFileCreateBatch, ImageFileCreateEntry
from msrest.authentication import ApiKeyCredentials

# Replace with valid values
ENDPOINT = os.environ["VISION_TRAINING_ENDPOINT"]
training_key = os.environ["VISION_TRAINING_KEY"]
prediction_key = os.environ["VISION_PREDICTION_KEY"]
prediction_resource_id = os.environ["VISION_PREDICTION_RESOURCE_ID"]

base_image_location = os.environ.get("QUICKSTART_IMAGES", os.path.join(os.path.dirname(__file__), "Images"))
poll_seconds = float(os.environ.get("QUICKSTART_POLL_SECONDS", "10"))

credentials = ApiKeyCredentials(in_headers={"Training-key": training_key})
trainer = CustomVisionTrainingClient(ENDPOINT, credentials)
prediction_credentials = ApiKeyCredentials(in_headers={"Prediction-key": prediction_key})
predictor = CustomVisionPredictionClient(ENDPOINT, prediction_credentials)

publish_iteration_name = "classifyModel"

# Create a new project
print("Creating project...")
project_name = uuid.uuid4()
project = trainer.create_project(project_name)

# Make two tags in the new project
hemlock_tag = trainer.create_tag(project.id, "Hemlock")
cherry_tag = trainer.create_tag(project.id, "Japanese Cherry")

print("Adding images...")
image_list = []

for image_num in range(1, 11):
    file_name = f"hemlock_{image_num}.jpg"
    with open(os.path.join(base_image_location, "Hemlock", file_name), "rb") as image_contents:
        image_list.append(ImageFileCreateEntry(name=file_name, contents=image_contents.read(), tag_ids=[hemlock_tag.id]))

for image_num in range(1, 11):
    file_name = f"japanese_cherry_{image_num}.jpg"
    with open(os.path.join(base_image_location, "Japanese_Cherry", file_name), "rb") as image_contents:
        image_list.append(ImageFileCreateEntry(name=file_name, contents=image_contents.read(), tag_ids=[cherry_tag.id]))

upload_result = trainer.create_images_from_files(project.id, ImageFileCreateBatch(images=image_list))
if not upload_result.is_batch_successful:
    print("Image batch upload failed.")
    for image in upload_result.images:
        print("Image status: ", image.status)
    exit(-1)

print("Training...")
iteration = trainer.train_project(project.id)
while iteration.status != "Completed":
    iteration = trainer.get_iteration(project.id, iteration.id)
    print("Training status: " + iteration.status)
    print(f"Waiting {poll_seconds:g} seconds...")
    time.sleep(poll_seconds)

# The iteration is now trained. Publish it to the project endpoint
trainer.publish_iteration(project.id, iteration.id, publish_iteration_name, prediction_resource_id)
print("Done!")

# Now there is a trained endpoint that can be used to make a prediction
with open(os.path.join(base_image_location, "Test", "test_image.jpg"), "rb") as image_contents:
    results = predictor.classify_image(project.id, publish_iteration_name, image_contents.read())

    # Display the results.
    for prediction in results.predictions:
        print("\t" + prediction.tag_name + f": {prediction.probability * 100:.2f}%")
