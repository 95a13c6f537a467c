variable "project_id" {
  description = "Project of the service."
  type        = string
}

variable "name" {
  description = "Cloud Run service name."
  type        = string
}

variable "location" {
  description = "Region."
  type        = string
}

variable "image" {
  description = "Container image (Artifact Registry URL with tag)."
  type        = string
}

variable "service_account_email" {
  description = "Runtime identity of the revisions."
  type        = string
}

variable "ingress" {
  description = "INGRESS_TRAFFIC_ALL, INGRESS_TRAFFIC_INTERNAL_ONLY or INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER."
  type        = string

  validation {
    condition     = contains(["INGRESS_TRAFFIC_ALL", "INGRESS_TRAFFIC_INTERNAL_ONLY", "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER"], var.ingress)
    error_message = "Unknown ingress setting."
  }
}

variable "cpu" {
  description = "vCPUs per instance (1, 2, 4 or 8)."
  type        = string
}

variable "memory" {
  description = "Memory per instance, e.g. 512Mi, 4Gi."
  type        = string
}

variable "concurrency" {
  description = "Maximum concurrent requests per instance."
  type        = number
}

variable "timeout_seconds" {
  description = "Request timeout."
  type        = number

  validation {
    condition     = var.timeout_seconds >= 1 && var.timeout_seconds <= 3600
    error_message = "Cloud Run request timeouts are 1 to 3600 seconds."
  }
}

variable "min_instances" {
  description = "Instances kept warm (0: scale to zero)."
  type        = number
}

variable "max_instances" {
  description = "Upper bound on instances (protects quotas and the budget)."
  type        = number
}

variable "env" {
  description = "Plain environment variables."
  type        = map(string)
  default     = {}
}

variable "secret_env" {
  description = "Environment variables read from Secret Manager: name => { secret, version }."
  type = map(object({
    secret  = string
    version = string
  }))
  default = {}
}

variable "health_path" {
  description = "HTTP path of the startup probe."
  type        = string
  default     = "/healthz"
}

variable "deletion_protection" {
  description = "Refuse terraform destroy of the service."
  type        = bool
  default     = true
}

variable "iap_enabled" {
  description = "Put Identity-Aware Proxy in front of the service (the operators' console)."
  type        = bool
  default     = false
}
