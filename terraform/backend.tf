# State lives in a GCS bucket you create once per project (see README.md, "Prerequisites").
# Partial configuration: pass the bucket at init time,
#   terraform init -backend-config="bucket=<state-bucket>" -backend-config="prefix=mediarelay"
terraform {
  backend "gcs" {}
}
