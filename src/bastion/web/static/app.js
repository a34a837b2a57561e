document.getElementById("app").textContent = "Bastion store";
